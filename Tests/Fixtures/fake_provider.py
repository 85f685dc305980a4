#!/usr/bin/env python3
"""A loopback HTTP server that answers like the model providers Cline calls.

Usage: fake_provider.py SCENARIO REQUEST_LOG
Prints the port it listens on (127.0.0.1) as its first line, then serves
until killed. Every request is appended to REQUEST_LOG as one JSON line
(method, path, headers with lower-case names, the body's model) for the tests
to assert on: which path each dialect called and which key header arrived.
`headers` maps each name to its last value; `header_list` holds every header
line as [name, value] in order (duplicates included, and any line an injected
bare LF split off).

Dialects, by path (any prefix before them is the provider route):
  .../v1/messages                          Anthropic Messages
  .../chat/completions                     OpenAI chat completions (OpenAI, OpenRouter, compatible)
  .../responses                            OpenAI Responses
  .../models/M:generateContent             Gemini (JSON)
  .../models/M:streamGenerateContent       Gemini (server-sent events with ?alt=sse)
A request with `"stream": true` (Anthropic, chat completions, Responses) or
Gemini's `:streamGenerateContent` gets a server-sent event stream in the
dialect's own form, with the same usage as the JSON answer (see USAGE); a
chat stream carries its usage chunk (`choices: []`) only when the request
asked for it (`stream_options.include_usage`). The log's `stream_options` is
the request's. Without `alt=sse`, Gemini's stream is a JSON array of chunks.
SCENARIO: ok (answers with usage) | overloaded (each dialect's error shape) |
badkey (GET .../models answers 401) | aider (chat completions answer with two
files in aider's whole-file edit format) | mini (chat completions answer with
mini-swe-agent's `bash` tool calls, one step per call: write the files, try to
write OUTSIDE, the optional third argument, then submit) |
retry429 (the first POST gets 429 with
Retry-After: 1, later ones ok) | reset (the first POST's connection is reset
before any byte, later ones ok) | midstream (a streamed answer is reset after
its first event). Each log entry has `t`, when the request arrived (time.time()),
and a POST's `bytes` (its body's size) and output limits (`max_tokens`,
`max_completion_tokens`, `max_output_tokens`, `generation_config`). The model
listing holds `"gate": "open"` once a file REQUEST_LOG.gate exists.
"""
import json
import os
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SCENARIO, LOG = sys.argv[1], sys.argv[2]
OUTSIDE = sys.argv[3] if len(sys.argv) > 3 else "/usr/agent-runner-escape"
lock = threading.Lock()
posts = {"n": 0}
TEXT = "I will write the README and the service."


def anthropic(model):
    if SCENARIO == "overloaded":
        return 529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    return 200, {"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
                 "content": [{"type": "text", "text": TEXT}], "stop_reason": "end_turn",
                 "usage": {"input_tokens": 1200, "output_tokens": 340, "cache_read_input_tokens": 800,
                           "cache_creation_input_tokens": 64}}


def openai_error():
    return 429, {"error": {"message": "Rate limit reached for requests", "type": "rate_limit_error",
                           "code": "rate_limit_exceeded"}}


WHOLE_FILES = """I will write the README and the service.

README.md
```
# Tiny

Written by aider through the fake provider.
```

src/main.py
```
print("hello from aider")
```
"""

MINI_STEPS = [
    "printf '# Tiny\\n\\nWritten by mini-swe-agent.\\n' > README.md && mkdir -p src "
    "&& printf 'print(1)\\n' > src/main.py && env | sort > agent-env.txt && ls",
    "echo escaped > " + OUTSIDE,
    "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT",
]


def mini_step(body):
    """The next bash tool call: one per tool result already in the conversation."""
    done = sum(1 for m in body.get("messages", []) if isinstance(m, dict) and m.get("role") == "tool")
    command = MINI_STEPS[min(done, len(MINI_STEPS) - 1)]
    call = {"id": "call_%d" % done, "type": "function",
            "function": {"name": "bash", "arguments": json.dumps({"command": command})}}
    return {"role": "assistant", "content": "Step %d." % (done + 1), "tool_calls": [call]}, "tool_calls"


def chat(model, body=None):
    if SCENARIO == "overloaded":
        return openai_error()
    message, finish = {"role": "assistant", "content": TEXT}, "stop"
    if SCENARIO == "aider":
        message = {"role": "assistant", "content": WHOLE_FILES}
    elif SCENARIO == "mini":
        message, finish = mini_step(body or {})
    return 200, {"id": "chatcmpl-fake", "object": "chat.completion", "model": model,
                 "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                 "usage": {"prompt_tokens": 900, "completion_tokens": 210, "total_tokens": 1110,
                           "prompt_tokens_details": {"cached_tokens": 512}}}


def responses(model):
    if SCENARIO == "overloaded":
        return openai_error()
    return 200, {"id": "resp_fake", "object": "response", "model": model, "status": "completed",
                 "output": [{"type": "message", "role": "assistant",
                             "content": [{"type": "output_text", "text": TEXT}]}],
                 "usage": {"input_tokens": 700, "output_tokens": 150, "total_tokens": 850,
                           "input_tokens_details": {"cached_tokens": 256}}}


def gemini(model):
    if SCENARIO == "overloaded":
        return 503, {"error": {"code": 503, "status": "UNAVAILABLE", "message": "The model is overloaded."}}
    return 200, {"candidates": [{"content": {"role": "model", "parts": [{"text": TEXT}]}, "finishReason": "STOP"}],
                 "usageMetadata": {"promptTokenCount": 1500, "candidatesTokenCount": 420,
                                   "cachedContentTokenCount": 1000}, "modelVersion": model}


def sse(events):
    """Server-sent events: (event name or None, payload) pairs."""
    out = ""
    for name, payload in events:
        if name:
            out += "event: " + name + "\n"
        out += "data: " + (payload if isinstance(payload, str) else json.dumps(payload)) + "\n\n"
    return out.encode()


def stream(path, model, body, answer, query):
    """The answer of a streamed call, as the dialect streams it."""
    if path.endswith("/v1/messages"):
        usage = answer["usage"]
        start = dict(answer, content=[], stop_reason=None,
                     usage={"input_tokens": usage["input_tokens"], "output_tokens": 1,
                            "cache_read_input_tokens": usage["cache_read_input_tokens"],
                            "cache_creation_input_tokens": usage["cache_creation_input_tokens"]})
        return sse([("message_start", {"type": "message_start", "message": start}),
                    ("content_block_start", {"type": "content_block_start", "index": 0,
                                             "content_block": {"type": "text", "text": ""}}),
                    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                             "delta": {"type": "text_delta", "text": TEXT}}),
                    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                       "usage": {"output_tokens": usage["output_tokens"]}}),
                    ("message_stop", {"type": "message_stop"})])
    if path.endswith("/chat/completions"):
        chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model}
        events = [(None, dict(chunk, choices=[{"index": 0, "delta": {"role": "assistant", "content": TEXT[:10]}}])),
                  (None, dict(chunk, choices=[{"index": 0, "delta": {"content": TEXT[10:]}, "finish_reason": "stop"}]))]
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append((None, dict(chunk, choices=[], usage=answer["usage"])))
        return sse(events + [(None, "[DONE]")])
    if path.endswith("/responses"):
        return sse([("response.created", {"type": "response.created",
                                           "response": dict(answer, status="in_progress", output=[], usage=None)}),
                    ("response.output_text.delta", {"type": "response.output_text.delta", "delta": TEXT}),
                    ("response.completed", {"type": "response.completed", "response": answer})])
    # Gemini: two chunks, each with the usage so far (the last one is final).
    usage = answer["usageMetadata"]
    first = {"candidates": [{"content": {"role": "model", "parts": [{"text": TEXT[:10]}]}}],
             "usageMetadata": dict(usage, candidatesTokenCount=7), "modelVersion": model}
    chunks = [first, answer]
    if "alt=sse" in query:
        return sse([(None, c) for c in chunks])
    return json.dumps(chunks).encode()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        """The model listing every dialect has (`doctor --online` asks it):
        401 in the badkey scenario, else an empty list."""
        path = urlsplit(self.path).path
        entry = {"method": "GET", "path": path, "headers": {k.lower(): v for k, v in self.headers.items()},
                 "header_list": [[k.lower(), v] for k, v in self.headers.items()]}
        with lock:
            with open(LOG, "a") as f:
                f.write(json.dumps(entry) + "\n")
        status, answer = (401, {"error": {"message": "invalid key"}}) if SCENARIO == "badkey" else (200, {"data": []})
        # A test's gate: the listing says "open" once the file REQUEST_LOG.gate exists (fake_cline.py's v3-parallel waits for it).
        if os.path.exists(LOG + ".gate"):
            answer["gate"] = "open"
        if not path.endswith("/models"):
            status, answer = 404, {"error": {"message": "no such route: " + path}}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self):
        """The listing's head only: its Content-Length, no body; then 30 s before the close."""
        path = urlsplit(self.path).path
        entry = {"method": "HEAD", "path": path, "headers": {k.lower(): v for k, v in self.headers.items()},
                 "header_list": [[k.lower(), v] for k, v in self.headers.items()]}
        with lock:
            with open(LOG, "a") as f:
                f.write(json.dumps(entry) + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(json.dumps({"data": []}))))
        self.end_headers()
        self.wfile.flush()
        # The connection stays open a while: a client that waits for a body
        # after a HEAD's head is seen waiting, not released by a close.
        time.sleep(30)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        parts = urlsplit(self.path)
        path = parts.path
        if not isinstance(body, dict):
            body = {}
        model = body.get("model")
        streamed = bool(body.get("stream"))
        if path.endswith("/v1/messages"):
            status, answer = anthropic(model)
        elif path.endswith("/chat/completions"):
            status, answer = chat(model, body if isinstance(body, dict) else {})
        elif path.endswith("/responses"):
            status, answer = responses(model)
        elif ":generateContent" in path or ":streamGenerateContent" in path:
            model = path.rsplit("/", 1)[-1].split(":")[0]
            status, answer = gemini(model)
            streamed = ":streamGenerateContent" in path
        else:
            status, answer = 404, {"error": {"message": "no such route: " + path}}
        with lock:
            posts["n"] += 1
            first = posts["n"] == 1
        if SCENARIO == "retry429" and first:
            status, answer = 429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
        entry = {"method": self.command, "path": path, "query": parts.query, "model": model, "t": time.time(),
                 "stream_options": body.get("stream_options"), "body_keys": sorted(body.keys()),
                 "temperature": body.get("temperature"), "bytes": len(raw),
                 "max_tokens": body.get("max_tokens"), "max_completion_tokens": body.get("max_completion_tokens"),
                 "max_output_tokens": body.get("max_output_tokens"),
                 "generation_config": body.get("generationConfig"),
                 "headers": {k.lower(): v for k, v in self.headers.items()},
                 "header_list": [[k.lower(), v] for k, v in self.headers.items()]}
        with lock:
            with open(LOG, "a") as f:
                f.write(json.dumps(entry) + "\n")
        if SCENARIO == "reset" and first:
            self.reset()
            return
        if streamed and status == 200:
            data = stream(path, model, body, answer, parts.query)
            if SCENARIO == "midstream":
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.wfile.write(data[:data.index(b"\n\n") + 2])
                self.wfile.flush()
                time.sleep(0.2)
                self.reset()
                return
            ctype = "application/json" if data.startswith(b"[") else "text/event-stream"
        else:
            data = json.dumps(answer).encode()
            ctype = "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if status == 429:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(data)

    def reset(self):
        """Closes the connection with a TCP reset (SO_LINGER 0)."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
