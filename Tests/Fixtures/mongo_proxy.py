#!/usr/bin/env python3
"""A MongoDB wire-protocol proxy on loopback standing in for a stricter server:
forwards every message to the real test server, but answers an OP_MSG command
that contains any of the given byte patterns itself, with a command error
(ok: 0), as a server that does not implement an operator would.

Usage: mongo_proxy.py UPSTREAM_PORT [--code N] [--errmsg TEXT] [--count FILE] PATTERN...
Prints its own port first. PATTERN is matched against the raw request bytes
(e.g. '$not' matches any document key "$not"). With --count, every command
forwarded (OP_MSG, and the legacy OP_QUERY a driver may open a connection
with) is appended to FILE as one line: its name and, when the name's value is
a string, that (the collection).
"""
import socket
import struct
import sys
import threading

OP_MSG = 2013
OP_QUERY = 2004


def cstring(s):
    return s.encode() + b"\x00"


def bson(fields):
    body = b""
    for key, value in fields:
        if isinstance(value, float):
            body += b"\x01" + cstring(key) + struct.pack("<d", value)
        elif isinstance(value, int):
            body += b"\x10" + cstring(key) + struct.pack("<i", value)
        else:
            data = value.encode() + b"\x00"
            body += b"\x02" + cstring(key) + struct.pack("<i", len(data)) + data
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def read_message(sock):
    header = b""
    while len(header) < 16:
        chunk = sock.recv(16 - len(header))
        if not chunk:
            return None
        header += chunk
    length = struct.unpack("<i", header[:4])[0]
    rest = b""
    while len(rest) < length - 16:
        chunk = sock.recv(min(65536, length - 16 - len(rest)))
        if not chunk:
            return None
        rest += chunk
    return header + rest


def main():
    args = sys.argv[1:]
    upstream_port = int(args.pop(0))
    code, errmsg, count = 238, None, None
    patterns = []
    while args:
        a = args.pop(0)
        if a == "--code":
            code = int(args.pop(0))
        elif a == "--errmsg":
            errmsg = args.pop(0)
        elif a == "--count":
            count = args.pop(0)
        else:
            patterns.append(a.encode())
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(listener.getsockname()[1], flush=True)
    next_id = [1 << 24]
    count_lock = threading.Lock()

    def record(msg, opcode):
        # OP_MSG: header, flagBits, section kind 0, then the command document;
        # OP_QUERY: header, flags, collection name, skip, limit, then the query.
        # The document's first element's key is the command name.
        try:
            if opcode == OP_MSG:
                if msg[20] != 0:
                    return
                doc = msg[21:]
            else:
                doc = msg[msg.index(b"\x00", 20) + 9:]
            etype = doc[4]
            end = doc.index(b"\x00", 5)
            name = doc[5:end].decode()
            value = ""
            if etype == 2:
                n = struct.unpack("<i", doc[end + 1:end + 5])[0]
                value = doc[end + 5:end + 4 + n].decode(errors="replace")
            with count_lock, open(count, "a") as f:
                f.write("%s %s\n" % (name, value))
        except (IndexError, ValueError, struct.error):
            pass

    def serve(client):
        upstream = socket.create_connection(("127.0.0.1", upstream_port))
        lock = threading.Lock()

        def pump_back():
            try:
                while True:
                    msg = read_message(upstream)
                    if msg is None:
                        break
                    with lock:
                        client.sendall(msg)
            except OSError:
                pass
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        threading.Thread(target=pump_back, daemon=True).start()
        try:
            while True:
                msg = read_message(client)
                if msg is None:
                    break
                request_id, opcode = struct.unpack("<i", msg[4:8])[0], struct.unpack("<i", msg[12:16])[0]
                hit = next((p for p in patterns if p in msg), None)
                if opcode == OP_MSG and hit is not None:
                    text = errmsg or "Operator '%s' is not currently implemented" % hit.decode()
                    doc = bson([("ok", 0.0), ("errmsg", text), ("code", code), ("codeName", "NotImplemented")])
                    next_id[0] += 1
                    body = struct.pack("<I", 0) + b"\x00" + doc
                    reply = struct.pack("<iiii", 16 + len(body), next_id[0], request_id, OP_MSG) + body
                    with lock:
                        client.sendall(reply)
                    continue
                if count and opcode in (OP_MSG, OP_QUERY):
                    record(msg, opcode)
                upstream.sendall(msg)
        except OSError:
            pass
        for s in (client, upstream):
            try:
                s.close()
            except OSError:
                pass

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


main()
