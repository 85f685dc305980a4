#!/usr/bin/env python3
"""A MongoDB wire-protocol proxy on loopback standing in for a stricter server:
forwards every message to the real test server, but answers an OP_MSG command
that contains any of the given byte patterns itself, with a command error
(ok: 0), as a server that does not implement an operator would.

Usage: mongo_proxy.py UPSTREAM_PORT [--code N] [--errmsg TEXT] [--count FILE]
                      [--drop-events PATTERN[=TYPE,...]] [--flatten-dotted]
                      [--flatten-nested] [--dates-as-strings]
                      [--lose-reply PATTERN] PATTERN...
Prints its own port first. PATTERN is matched against the raw request bytes
(e.g. '$not' matches any document key "$not"). With --count, every command
forwarded (OP_MSG, and the legacy OP_QUERY a driver may open a connection
with) is appended to FILE as one line: its name and, when the name's value is
a string, that (the collection); the sweep of cancelled pending jobs is an
"update jobs sweep". With --lose-reply, the first update containing its
pattern reaches the server, and its answer is lost: the connection closes;
the next such update (the driver's retry) is answered as by a server that does
not recognise retried writes: it matched nothing.
FILE.tokens has the same lines, each with the number of
distinct lease tokens (upper-case uuids) an update or findAndModify names.

It also rewrites answers the way some MongoDB-wire servers get them wrong:
  --drop-events PATTERN[=TYPE,...]  a change stream whose request contains
      PATTERN delivers no event (only those of the given operationTypes, when
      named): the server accepts the filter and then matches nothing;
  --flatten-dotted    a find projecting a dotted path ("lease.token": 1)
      answers it as a flat key ({"lease.token": ...}), not nested;
  --flatten-nested    a find projecting a field that holds a sub-document
      ("lease": 1) answers its fields as flat dotted keys;
  --dates-as-strings  every date in a find's answer comes back as an ISO
      string.
"""
import re
import socket
import struct
import sys
import threading

import bson_lite

OP_MSG = 2013
LEASE_TOKEN = re.compile(rb"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}")
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


class Plans:
    """One connection's answers to rewrite: by request id, then by cursor id."""

    def __init__(self):
        self.by_request, self.by_cursor = {}, {}


class Rewrites:
    """How this proxy's server gets answers wrong (see the module's doc)."""

    def __init__(self):
        self.drop_events, self.flatten, self.dates = None, None, False

    @property
    def active(self):
        return bool(self.drop_events or self.flatten or self.dates)

    def request(self, msg, plans):
        """Notes what the answer to this request needs (kind-0 body only)."""
        if msg[20] != 0:
            return
        try:
            body, _ = bson_lite.decode(msg, 21)
        except (ValueError, IndexError, struct.error):
            return
        request_id = struct.unpack("<i", msg[4:8])[0]
        name = body.items[0][0] if body.items else ""
        plan = None
        if name == "find":
            paths = []
            projection = body.get("projection")
            if self.flatten and isinstance(projection, bson_lite.Doc):
                for key, value in projection.items:
                    included = isinstance(value, bson_lite.Scalar) and value.raw.strip(b"\x00") != b""
                    if included and key != "_id" and ("." in key or self.flatten == "nested"):
                        paths.append(key)
            if paths or self.dates:
                plan = ("find", paths)
        elif name == "aggregate" and self.drop_events and b"$changeStream" in msg and self.drop_events[0] in msg:
            plan = ("events", self.drop_events[1])
        elif name == "getMore":
            cursor = body.items[0][1]
            plan = plans.by_cursor.get(cursor.int if isinstance(cursor, bson_lite.Scalar) else None)
        if plan:
            plans.by_request[request_id] = plan

    def answer(self, msg, plans):
        """The answer, rewritten when its request asked for it."""
        if struct.unpack("<i", msg[12:16])[0] != OP_MSG:
            return msg
        plan = plans.by_request.pop(struct.unpack("<i", msg[8:12])[0], None)
        flags = struct.unpack("<I", msg[16:20])[0]
        if plan is None or msg[20] != 0:
            return msg
        try:
            body, _ = bson_lite.decode(msg, 21)
        except (ValueError, IndexError, struct.error):
            return msg
        cursor = body.get("cursor")
        if not isinstance(cursor, bson_lite.Doc):
            return msg
        cursor_id = cursor.get("id")
        if isinstance(cursor_id, bson_lite.Scalar) and cursor_id.int:
            plans.by_cursor[cursor_id.int] = plan
        for batch in ("firstBatch", "nextBatch"):
            docs = cursor.get(batch)
            if not isinstance(docs, list):
                continue
            if plan[0] == "events":
                kept = []
                for event in docs:
                    kind = event.get("operationType") if isinstance(event, bson_lite.Doc) else None
                    if plan[1] and (kind is None or kind.text not in plan[1]):
                        kept.append(event)
                cursor.set(batch, kept)
            else:
                for doc in docs:
                    if isinstance(doc, bson_lite.Doc):
                        for path in plan[1]:
                            flatten(doc, path)
                        if self.dates:
                            stringify_dates(doc)
        flags &= ~1  # no checksum: the body changed
        out = struct.pack("<I", flags) + b"\x00" + bson_lite.encode(body)
        return struct.pack("<iiii", 16 + len(out), *struct.unpack("<iii", msg[4:16])) + out


def flatten(doc, path):
    """Moves the value at `path` (or, for a sub-document at a plain name, each
    of its fields) to flat dotted keys at the top of `doc`."""
    parts = path.split(".")
    parent, value = doc, doc
    for part in parts:
        parent, value = value, value.get(part) if isinstance(value, bson_lite.Doc) else None
        if value is None:
            return
    if len(parts) == 1:
        if isinstance(value, bson_lite.Doc):
            doc.remove(path)
            for key, inner in value.items:
                doc.set(path + "." + key, inner)
        return
    parent.remove(parts[-1])
    top = doc.get(parts[0])
    if isinstance(top, bson_lite.Doc) and not top.items:
        doc.remove(parts[0])
    doc.set(path, value)


def stringify_dates(value):
    items = value.items if isinstance(value, bson_lite.Doc) else list(enumerate(value))
    for key, inner in items:
        if isinstance(inner, (bson_lite.Doc, list)):
            stringify_dates(inner)
        elif inner.kind == bson_lite.DATETIME:
            text = bson_lite.Scalar.string(bson_lite.iso(inner.millis))
            if isinstance(value, bson_lite.Doc):
                value.set(key, text)
            else:
                value[key] = text


def main():
    args = sys.argv[1:]
    upstream_port = int(args.pop(0))
    code, errmsg, count = 238, None, None
    # The first update containing this pattern is applied, and its answer
    # lost: the connection is closed instead (once, then the pattern is spent).
    lose_reply = [None, None]
    patterns = []
    rewrite = Rewrites()
    while args:
        a = args.pop(0)
        if a == "--code":
            code = int(args.pop(0))
        elif a == "--errmsg":
            errmsg = args.pop(0)
        elif a == "--count":
            count = args.pop(0)
        elif a == "--drop-events":
            pattern, _, types = args.pop(0).partition("=")
            rewrite.drop_events = (pattern.encode(), set(filter(None, types.split(","))))
        elif a == "--flatten-dotted":
            rewrite.flatten = "dotted"
        elif a == "--flatten-nested":
            rewrite.flatten = "nested"
        elif a == "--dates-as-strings":
            rewrite.dates = True
        elif a == "--lose-reply":
            lose_reply[0] = args.pop(0).encode()
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
            # The sweep of cancelled pending jobs follows the supervisor's
            # wake-ups, not its jobs: told apart by its log line.
            tag = " sweep" if name == "update" and b"cancelled before it ran" in msg else ""
            # Lease tokens (uuids) a write names, apart: a renewal names every
            # running job's, a per-job heartbeat one.
            tokens = len(set(LEASE_TOKEN.findall(msg))) if name in ("update", "findAndModify") else 0
            with count_lock, open(count, "a") as f, open(count + ".tokens", "a") as t:
                f.write("%s %s%s\n" % (name, value, tag))
                t.write("%s %s%s %d\n" % (name, value, tag, tokens))
        except (IndexError, ValueError, struct.error):
            pass

    def serve(client):
        upstream = socket.create_connection(("127.0.0.1", upstream_port))
        lock = threading.Lock()
        plans = Plans()
        lost = set()

        def pump_back():
            try:
                while True:
                    msg = read_message(upstream)
                    if msg is None:
                        break
                    if struct.unpack("<i", msg[8:12])[0] in lost:
                        break
                    if rewrite.active:
                        msg = rewrite.answer(msg, plans)
                    with lock:
                        client.sendall(msg)
            except OSError:
                pass
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        def answer(request_id, fields):
            """Answers the request itself, with a document of `fields`."""
            next_id[0] += 1
            body = struct.pack("<I", 0) + b"\x00" + bson(fields)
            with lock:
                client.sendall(struct.pack("<iiii", 16 + len(body), next_id[0], request_id, OP_MSG) + body)

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
                    answer(request_id, [("ok", 0.0), ("errmsg", text), ("code", code), ("codeName", "NotImplemented")])
                    continue
                if count and opcode in (OP_MSG, OP_QUERY):
                    record(msg, opcode)
                is_update = opcode == OP_MSG and msg[25:33] == b"\x02update\x00"
                with count_lock:
                    retried = lose_reply[1] and is_update and lose_reply[1] in msg
                    if retried:
                        lose_reply[1] = None
                    if lose_reply[0] and is_update and lose_reply[0] in msg:
                        lose_reply[1], lose_reply[0] = lose_reply[0], None
                        lost.add(request_id)
                if retried:
                    # The driver's retry of the write whose answer was lost,
                    # answered as a server that does not recognise retried
                    # writes: the filter matches nothing any more.
                    answer(request_id, [("n", 0), ("nModified", 0), ("ok", 1.0)])
                    continue
                if rewrite.active and opcode == OP_MSG:
                    rewrite.request(msg, plans)
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
