#!/usr/bin/env python3
"""A stand-in job child for queue tests: speaks the child protocol without
doing real work, and records when each job ran.

Usage: fake_child.py SECONDS RUN_LOG
Reads the ticket (one line) on stdin, appends "start <jobId> <project> <time>" to
RUN_LOG, sleeps SECONDS (SIGTERM ends it), appends "end …", then prints a
successful result event. Like the real child, a stop line on stdin (the
supervisor's stop for a reason in CHECKPOINT_ON) ends it at once: it has no
partial work to keep.
"""
import json
import os
import signal
import sys
import threading
import time

# Like the real child, which is init of its PID namespace and so must handle
# SIGTERM itself (init ignores signals it has no handler for).
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

seconds, log = float(sys.argv[1]), sys.argv[2]
ticket = json.loads(sys.stdin.readline())


def record(what):
    with open(log, "a") as f:
        f.write(f"{what} {ticket['jobId']} {ticket['projectName'].replace(' ', '_')} {time.time():.3f}\n")


def watch_stdin():
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and "stop" in message:
            os._exit(0)


record("start")
threading.Thread(target=watch_stdin, daemon=True).start()
print(json.dumps({"type": "stage", "stage": "generating"}), flush=True)
time.sleep(seconds)
record("end")
print(json.dumps({"type": "result", "ok": True, "metadata": {"generator": "fake"}}), flush=True)
