#!/usr/bin/env python3
"""A `cline` that tries to connect to a host Unix socket, TARGET (the test
inserts `TARGET = "..."` as this file's second line), records what happened
in unix.txt, and writes a README so the job itself succeeds."""
import socket
import sys

if sys.argv[1:] == ["--version"]:  # doctor asks
    print("0.0.0")
    sys.exit(0)

try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect(TARGET)  # noqa: F821 (inserted by the test)
    s.close()
    result = "connected"
except OSError as e:
    result = f"refused: {e.strerror}"
open("unix.txt", "w").write(result + "\n")
open("README.md", "w").write("# unix socket probe\n")
open("main.txt", "w").write("ok\n")
