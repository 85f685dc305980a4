#!/usr/bin/env python3
"""A loopback TCP service that counts connections: prints its port, then
appends one line per accepted connection to LOG. Usage: tcp_listener.py LOG"""
import socket
import sys

s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    with open(sys.argv[1], "a") as f:
        f.write("connection\n")
    c.close()
