#!/usr/bin/env python3
"""A stand-in job child whose checkpoint is slow: for the fencing tests.

Usage: checkpointing_child.py CHECKPOINT_SECONDS RUN_LOG
Reads the ticket (one line) on stdin, appends "start <jobId>" to RUN_LOG and
runs until the supervisor's stop line. Then, as the real child, it answers
with a `stopping` event, takes CHECKPOINT_SECONDS to "commit" its partial
work, asks for the push token ("asked") and records what it got: "token"
for the hand-over line, "no-token" when its stdin closed instead. A token
recorded means the supervisor handed it over: "pushed".
"""
import json
import signal
import sys
import time

# Like the real child, which is init of its PID namespace.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

seconds, log = float(sys.argv[1]), sys.argv[2]
ticket = json.loads(sys.stdin.readline())


def record(what):
    with open(log, "a") as f:
        f.write(f"{what} {ticket['jobId']} {time.time():.3f}\n")


def emit(event):
    print(json.dumps(event), flush=True)


record("start")
emit({"type": "stage", "stage": "generating"})
for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if isinstance(message, dict) and "stop" in message:
        reason = message["stop"].get("reason", "cancel")
        emit({"type": "stopping"})
        record("stopping")
        time.sleep(seconds)
        emit({"type": "push_token_request"})
        record("asked")
        answer = sys.stdin.readline()
        if not answer:
            record("no-token")
            sys.exit(1)
        record("token")
        plan = ticket.get("checkpoint") or {}
        emit({"type": "checkpoint", "checkpoint": {"branch": plan.get("branch", "wip"), "commitSha": "0" * 40,
                                                    "reason": reason}})
        record("pushed")
        sys.exit(0)
record("eof")
