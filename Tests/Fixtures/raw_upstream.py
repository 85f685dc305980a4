#!/usr/bin/env python3
"""A loopback TCP server that records every byte it receives, per connection.

Usage: raw_upstream.py LOG
Prints its port (127.0.0.1) first. For each connection: reads until a
request head and the body its Content-Length declares have arrived, then
half a second more (so bytes a client pipelines behind the request arrive
too), answers `200` with `Connection: keep-alive` and a 2-byte body, and
keeps reading until the peer closes. Then it appends one JSON line to LOG:
{"received": <every byte, latin-1 decoded>}. A connection that sends
nothing is held open silently (a tunnel that idles).
"""
import json
import socket
import sys
import threading

LOG = sys.argv[1]
lock = threading.Lock()


def serve(c):
    data = b""
    c.settimeout(None)
    while b"\r\n\r\n" not in data:
        got = c.recv(65536)
        if not got:
            break
        data += got
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or b"0")
    while len(rest) < length:
        got = c.recv(65536)
        if not got:
            break
        rest += got
        data += got
    c.settimeout(0.5)
    try:
        while True:
            got = c.recv(65536)
            if not got:
                break
            data += got
    except socket.timeout:
        pass
    try:
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=60\r\n\r\nok")
        c.settimeout(2)
        while True:
            got = c.recv(65536)
            if not got:
                break
            data += got
    except OSError:
        pass
    c.close()
    with lock:
        with open(LOG, "a") as f:
            f.write(json.dumps({"received": data.decode("latin-1")}) + "\n")


s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
while True:
    conn, _ = s.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
