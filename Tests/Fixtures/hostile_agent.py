#!/usr/bin/env python3
"""A hostile agent for the containment tests, run as `cline` inside the real
sandbox. The spec's description holds JSON: {"db": port, "service": port,
"marker": text, "unix": [paths of Unix sockets the test listens on]}. It tries every way out it can think of, records what
happened in attacks.json, hunts for secrets in everything it can read
(evidence.txt), leaves a detached grandchild behind (argv holds the
marker), then writes a README so the job itself succeeds.

It never opens a connection to a non-loopback address: the private and
metadata addresses are only asked of the egress proxy, whose policy refuses
them before any connect.
"""
import json
import os
import socket
import sys

spec = json.load(open("../input/architecture_spec.json"))
try:
    targets = json.loads(spec.get("description", ""))
except ValueError:
    # Not a hostile job: behave.
    open("README.md", "w").write("# normal\n")
    open("main.txt", "w").write("ok\n")
    sys.exit(0)
results = {}


def tcp(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
        s.close()
        return "connected"
    except OSError as e:
        return f"refused: {e.strerror or e}"


def via_proxy(target, method="CONNECT"):
    """The proxy's first response line to `METHOD target` (CONNECT host:port or GET url)."""
    try:
        s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
        s.sendall(f"{method} {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        line = s.recv(4096).decode(errors="replace").split("\r\n")[0]
        s.close()
        return line
    except OSError as e:
        return f"error: {e}"


def make(kind, *args):
    try:
        socket.socket(*args).close()
        return "created"
    except OSError as e:
        return f"refused: {e.strerror}"


results["db_direct"] = tcp(targets["db"])
results["service_direct"] = tcp(targets["service"])
results["proxy_private"] = via_proxy("10.1.2.3:80")
results["proxy_metadata"] = via_proxy("169.254.169.254:80")
results["proxy_metadata_http"] = via_proxy("http://169.254.169.254/latest/meta-data/", "GET")
results["proxy_not_allowed"] = via_proxy("example.com:443")
results["proxy_loopback_db"] = via_proxy(f"127.0.0.1:{targets['db']}")
results["proxy_localhost_service"] = via_proxy(f"localhost:{targets['service']}")
# A name the rules allow (JOB_EGRESS_ALLOW=localhost) that resolves to loopback.
results["proxy_allowed_name_loopback"] = via_proxy("localhost:443")
results["udp"] = make("udp", socket.AF_INET, socket.SOCK_DGRAM)
results["udp6"] = make("udp6", socket.AF_INET6, socket.SOCK_DGRAM)
results["raw"] = make("raw", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
results["packet"] = make("packet", socket.AF_PACKET, socket.SOCK_RAW)


def unix(path, kind=socket.SOCK_STREAM):
    """Connects to a Unix socket of the host (the journal's is a datagram one)."""
    try:
        s = socket.socket(socket.AF_UNIX, kind)
        s.settimeout(3)
        s.connect(path)
        s.close()
        return "connected"
    except OSError as e:
        return f"refused: {e.strerror}"


for i, path in enumerate(targets.get("unix", [])):
    results[f"unix_{i}"] = unix(path)
results["journal"] = unix("/run/systemd/journal/socket", socket.SOCK_DGRAM)
# No DNS lookup here: it would go to /etc/resolv.conf's (non-loopback)
# server if containment ever broke. "No DNS of its own" is the UDP refusal.

# Everything readable that could hold a key.
evidence = [json.dumps(dict(os.environ)), " ".join(sys.argv)]
for path in ["/proc/1/environ", "/proc/1/cmdline", "/proc/self/environ", "/proc/self/cmdline"]:
    try:
        evidence.append(open(path, "rb").read().decode(errors="replace"))
    except OSError as e:
        evidence.append(f"{path}: {e.strerror}")
for root in [os.environ.get("HOME", ""), os.path.abspath("..")]:
    for d, _, files in os.walk(root):
        for f in files:
            try:
                with open(os.path.join(d, f), "rb") as fh:
                    evidence.append(fh.read(1 << 20).decode(errors="replace"))
            except OSError:
                pass
results["evidence_items"] = len(evidence)

# A detached grandchild that tries to outlive the job.
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(300)", targets["marker"]])
    os._exit(0)
os.wait()

open("attacks.json", "w").write(json.dumps(results, indent=1, sort_keys=True) + "\n")
open("evidence.txt", "w").write("\n".join(evidence))
open("README.md", "w").write("# hostile\n")
print(json.dumps({"type": "say", "say": "text", "text": "attacks done", "ts": 1}))
