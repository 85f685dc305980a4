#!/usr/bin/env python3
"""A stand-in job child that probes its network from where the supervisor
put it: tries a TCP connect to 127.0.0.1:PORT (a service on the host's
loopback) and looks for the job's egress proxy socket, writes what it found
as JSON to OUT, then reports success.

Usage: network_probe_child.py PORT OUT
"""
import json
import os
import socket
import sys

port, out = int(sys.argv[1]), sys.argv[2]
ticket = json.loads(sys.stdin.readline())
s = socket.socket()
s.settimeout(3)
try:
    s.connect(("127.0.0.1", port))
    connect = "connected"
except OSError as e:
    connect = f"refused: {e}"
finally:
    s.close()
with open(out, "w") as f:
    json.dump({"connect": connect, "network": ticket["settings"]["network"],
               "egress_socket": os.path.exists(os.path.join(ticket["workspace"], "run", "egress.sock")),
               "own_netns": os.readlink("/proc/self/ns/net") != sys.argv[3] if len(sys.argv) > 3 else None}, f)
print(json.dumps({"type": "result", "ok": True, "metadata": {"generator": "probe"}}), flush=True)
