#!/usr/bin/env python3
"""A fake Cline CLI for the tests: reads its provider configuration where the
real CLI reads it, calls the provider's API the way the real CLI does (path,
key header), and prints what the real CLI prints with --json.

The tests copy this file into a temporary bin/cline with a first line
`MODE = "…"` after the shebang:
  v3            Cline 3.x: providers.json; run_start (with -v), agent_event, run_result
  v3-aborted    3.x, the run is aborted from outside: run_aborted, exit 0
  v3-timeout    3.x, the CLI's own timeout: run_result aborted, error JSON on stderr, exit 1
  v3-loop       3.x, an agent that calls the model again and again (up to 20 times) until a call fails
  v3-stubborn   as v3-loop, but then it waits 300 s instead of exiting
  v3-parallel   waits until the provider's model listing says "gate": "open", then calls the model
                from 6 threads at once, each again and again (up to 20 times) until a call fails; each
                request carries a prompt of 1000 bytes and max_tokens 300
  v3-hang       writes its tree at once, then waits 300 s (only a stop ends it)
  v3-resume     with a README.md already in its folder (a checkpoint's), writes
                resumed.txt (that README's text) and runs as v3; else as v3-hang
  v2            Cline 2.x: globalState.json + secrets.json; say/ask messages
A provider error (HTTP status >= 400) ends either format as the real CLI does:
an error on stderr (3.x) or an api_req_failed message and an error line (2.x), exit 1.
It also writes $TMPDIR/agent-evidence.json (argv and environment) for the tests.
"""
import datetime
import json
import os
import re
import sys
import urllib.error
import urllib.request

MODE = globals().get("MODE", "v3")
V3 = MODE.startswith("v3")
TIME = [1764000000000]


def emit(record, stream=sys.stdout):
    if V3:
        record = {"ts": datetime.datetime.now(datetime.timezone.utc).isoformat(), **record}
    print(json.dumps(record), file=stream, flush=True)


def fail(message):
    emit({"type": "error", "message": message}, sys.stderr if V3 else sys.stdout)
    sys.exit(1)


def parse_args(argv):
    opts, positional, i = {}, [], 0
    takes_value = {"-c", "--cwd", "-t", "--timeout", "-m", "--model", "-P", "--provider", "--config", "--data-dir"}
    while i < len(argv):
        a = argv[i]
        if a in takes_value and i + 1 < len(argv):
            opts[a] = argv[i + 1]
            i += 2
        elif a.startswith("-"):
            opts[a] = True
            i += 1
        else:
            positional.append(a)
            i += 1
    return opts, positional


def clinedir(opts):
    return opts.get("--config") or os.environ.get("CLINE_DIR") or os.path.join(os.environ["HOME"], ".cline")


def config_v3(opts):
    """providers.json as @cline/cli 3.x resolves it."""
    data = opts.get("--data-dir") or os.environ.get("CLINE_DATA_DIR") or os.path.join(clinedir(opts), "data")
    path = os.environ.get("CLINE_PROVIDER_SETTINGS_PATH") or os.path.join(data, "settings", "providers.json")
    if not os.path.exists(path):
        fail("Not authenticated: no provider configured (" + path + ")")
    state = json.load(open(path))
    problem = invalid_v3(state)
    if problem:  # the real CLI falls back to empty settings: the "cline" provider, unauthenticated
        fail("Not authenticated (providers.json rejected: " + problem + ")")
    pid = opts.get("-P") or state.get("lastUsedProvider") or "cline"
    s = state["providers"][pid]["settings"]
    base = s.get("baseUrl")
    if not base:
        fail("fake cline: no baseUrl for " + pid + " (the tests never call a real endpoint)")
    key, model = s.get("apiKey", ""), opts.get("-m") or s.get("model") or "default-model"
    if pid == "anthropic":
        return pid, model, base + "/messages", {"x-api-key": key, "anthropic-version": "2023-06-01"}, "anthropic"
    if pid == "openai-native":
        return pid, model, base + "/responses", {"Authorization": "Bearer " + key}, "responses"
    if pid == "gemini":
        if not re.search(r"/v\d+(alpha|beta)?\d*$", base):
            base += "/v1beta"
        return pid, model, base + "/models/" + model + ":streamGenerateContent?alt=sse", {"x-goog-api-key": key}, "gemini"
    return pid, model, base + "/chat/completions", {"Authorization": "Bearer " + key}, "chat"


def invalid_v3(state):
    """What the 3.x schema (zod) would reject in providers.json, or None."""
    if state.get("version") != 1 or not isinstance(state.get("providers"), dict):
        return "version/providers"
    if not isinstance(state.get("modes", {}), dict):
        return "modes"
    for pid, entry in state["providers"].items():
        s = entry.get("settings", {})
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", str(s.get("provider", ""))):
            return pid + ": provider id"
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", str(entry.get("updatedAt", ""))):
            return pid + ": updatedAt"
        if entry.get("tokenSource", "manual") not in ("manual", "oauth", "migration"):
            return pid + ": tokenSource"
        if "baseUrl" in s and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", str(s["baseUrl"])):
            return pid + ": baseUrl"
        for key in ("apiKey", "model"):
            if key in s and not isinstance(s[key], str):
                return pid + ": " + key
    return None


def config_v2(opts):
    """globalState.json + secrets.json as cline 2.x reads them (act mode)."""
    data = os.path.join(clinedir(opts), "data")
    try:
        state = json.load(open(os.path.join(data, "globalState.json")))
        secrets = json.load(open(os.path.join(data, "secrets.json")))
    except OSError:
        state, secrets = {}, {}
    if state.get("welcomeViewCompleted") is not True:
        print("Not authenticated. Please run 'cline auth' first to configure your API credentials.", file=sys.stderr)
        sys.exit(1)
    pid = state.get("actModeApiProvider")
    if pid == "anthropic":
        base = state.get("anthropicBaseUrl")
        model, url_tail, headers, dialect = state.get("actModeApiModelId"), "/v1/messages", \
            {"x-api-key": secrets.get("apiKey", ""), "anthropic-version": "2023-06-01"}, "anthropic"
    elif pid == "gemini":
        base = state.get("geminiBaseUrl")
        model = state.get("actModeApiModelId")
        url_tail, headers, dialect = "/v1beta/models/" + str(model) + ":streamGenerateContent?alt=sse", \
            {"x-goog-api-key": secrets.get("geminiApiKey", "")}, "gemini"
    elif pid == "openai":
        base = state.get("openAiBaseUrl")
        model, url_tail, headers, dialect = state.get("actModeOpenAiModelId"), "/chat/completions", \
            {"Authorization": "Bearer " + secrets.get("openAiApiKey", "")}, "chat"
    else:
        fail("fake cline 2.x: unsupported provider " + str(pid))
    if not base:
        fail("fake cline: no base URL for " + pid + " (the tests never call a real endpoint)")
    return pid, model, base + url_tail, headers, dialect


def call(url, headers, dialect, model):
    if dialect == "anthropic":
        body = {"model": model, "max_tokens": 1024, "messages": [{"role": "user", "content": "build it"}]}
    elif dialect == "responses":
        body = {"model": model, "input": "build it"}
    elif dialect == "gemini":
        body = {"contents": [{"role": "user", "parts": [{"text": "build it"}]}]}
    else:
        body = {"model": model, "messages": [{"role": "user", "content": "build it"}]}
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            raw = r.read().decode()
    except urllib.error.HTTPError as e:
        err = json.loads(e.read().decode() or "{}").get("error", {})
        return None, "%d %s" % (e.code, err.get("message", "error"))
    if raw.startswith("data: "):
        # A stream of chunks, each with the usage so far: the last one is the whole answer.
        raw = [line[len("data: "):] for line in raw.splitlines() if line.startswith("data: ")][-1]
    a = json.loads(raw)
    if dialect == "anthropic":
        u = a["usage"]
        usage = (u["input_tokens"], u["output_tokens"], u.get("cache_read_input_tokens", 0),
                 u.get("cache_creation_input_tokens", 0))
        text = a["content"][0]["text"]
    elif dialect == "responses":
        u = a["usage"]
        usage = (u["input_tokens"], u["output_tokens"], u.get("input_tokens_details", {}).get("cached_tokens", 0), 0)
        text = a["output"][0]["content"][0]["text"]
    elif dialect == "gemini":
        u = a["usageMetadata"]
        usage = (u["promptTokenCount"], u["candidatesTokenCount"], u.get("cachedContentTokenCount", 0), 0)
        text = a["candidates"][0]["content"]["parts"][0]["text"]
    else:
        u = a["usage"]
        usage = (u["prompt_tokens"], u["completion_tokens"], u.get("prompt_tokens_details", {}).get("cached_tokens", 0), 0)
        text = a["choices"][0]["message"]["content"]
    return (text, usage), None


PARALLEL = 6


def gate(url, headers):
    """Polls the provider's model listing (through the proxy) until the test opens the gate."""
    import time
    listing = url[:-len("/chat/completions")] + "/models"
    deadline = time.time() + 150
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(urllib.request.Request(listing, headers=headers), timeout=20) as r:
                if json.loads(r.read().decode()).get("gate") == "open":
                    return
        except (urllib.error.URLError, ValueError):
            pass
        time.sleep(0.2)
    fail("fake cline: the gate never opened")


def call_parallel(url, headers, model):
    """One chat completion with a prompt of 1000 bytes and max_tokens 300; the error text, or None."""
    body = {"model": model, "max_tokens": 300, "messages": [{"role": "user", "content": "build it " + "x" * 991}]}
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
        return None
    except urllib.error.HTTPError as e:
        err = json.loads(e.read().decode() or "{}").get("error", {})
        return "%d %s" % (e.code, err.get("message", "error"))


def run_parallel(url, headers, model):
    """PARALLEL threads, each calling until a call fails; the first error, or None."""
    import threading
    errors = []

    def worker():
        for _ in range(20):
            error = call_parallel(url, headers, model)
            if error:
                errors.append(error)
                return
    gate(url, headers)
    threads = [threading.Thread(target=worker) for _ in range(PARALLEL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors[0] if errors else None


def write_tree():
    with open("README.md", "w") as f:
        f.write("# Built by the fake Cline\n")
    os.makedirs("api", exist_ok=True)
    with open("api/server.js", "w") as f:
        f.write("console.log('api')\n")


def cost(usage):
    return round((usage[0] * 3 + usage[1] * 15) / 1e6, 6)


def main():
    opts, positional = parse_args(sys.argv[1:])
    with open(os.path.join(os.environ.get("TMPDIR", "/tmp"), "agent-evidence.json"), "w") as f:
        json.dump({"argv": sys.argv, "env": dict(os.environ)}, f)
    if "--json" not in opts:
        fail("fake cline: run with --json")
    if len(positional) != 1 or not re.search(r"\s", positional[0]):
        fail("Unknown command or unquoted prompt: " + " ".join(positional))
    if opts.get("-c"):
        os.chdir(opts["-c"])
    prompt = positional[0]
    if V3:
        run_v3(opts, prompt)
    else:
        run_v2(opts, prompt)


def run_v3(opts, prompt):
    pid, model, url, headers, dialect = config_v3(opts)
    if MODE == "v3-resume" and os.path.exists("README.md"):
        with open("README.md") as f:
            found = f.read()
        with open("resumed.txt", "w") as f:
            f.write(found)
    elif MODE in ("v3-hang", "v3-resume"):
        # Partial work, then an agent that never ends by itself.
        write_tree()
        with open("partial.txt", "w") as f:
            f.write("written before the stop\n")
        emit({"type": "agent_event", "event": {"type": "iteration_start", "iteration": 1}})
        import time
        time.sleep(300)
    if "-v" in opts:
        emit({"type": "run_start", "providerId": pid, "modelId": model, "catalog": "bundled", "thinking": "off",
              "mode": "act"})
    emit({"type": "agent_event", "event": {"type": "iteration_start", "iteration": 1}})
    if MODE == "v3-parallel":
        write_tree()
        error = run_parallel(url, headers, model)
        answer = None if error else ("done", (0, 0, 0, 0))
    else:
        answer, error = call(url, headers, dialect, model)
    if MODE in ("v3-loop", "v3-stubborn"):
        # An agent that keeps calling the model (writing its tree after the first answer) until a call fails.
        for turn in range(2, 21):
            if error:
                break
            write_tree()
            emit({"type": "agent_event", "event": {"type": "iteration_start", "iteration": turn}})
            answer, error = call(url, headers, dialect, model)
        if error and MODE == "v3-stubborn":
            # An agent that does not stop on the error: only its job's stop ends it.
            import time
            time.sleep(300)
    if error:
        emit({"type": "agent_event", "event": {"type": "error", "error": {"name": "Error", "message": error},
                                               "recoverable": False, "iteration": 1}})
        emit({"type": "run_result", "finishReason": "error", "iterations": 1,
              "usage": {"inputTokens": 0, "outputTokens": 0}, "durationMs": 5, "text": error,
              "model": {"id": model, "provider": pid}})
        emit({"type": "error", "message": error}, sys.stderr)
        sys.exit(1)
    text, usage = answer
    emit({"type": "agent_event", "event": {"type": "content_start", "contentType": "text", "text": text[:6]}})
    emit({"type": "agent_event", "event": {"type": "content_end", "contentType": "text", "text": text}})
    emit({"type": "agent_event", "event": {"type": "content_start", "contentType": "tool", "toolName": "editor",
                                           "toolCallId": "t1", "input": {"command": "create", "path": "README.md"}}})
    write_tree()
    emit({"type": "agent_event", "event": {"type": "content_end", "contentType": "tool", "toolName": "editor",
                                           "toolCallId": "t1", "output": "created", "durationMs": 2}})
    emit({"type": "agent_event", "event": {"type": "content_start", "contentType": "tool", "toolName": "run_commands",
                                           "toolCallId": "t2", "input": {"commands": ["make test"]}}})
    emit({"type": "agent_event", "event": {"type": "content_end", "contentType": "tool", "toolName": "run_commands",
                                           "toolCallId": "t2", "error": "make: not found", "exitCode": 127}})
    emit({"type": "agent_event", "event": {"type": "error", "error": {"name": "Error", "message": "rate limited"},
                                           "recoverable": True, "iteration": 1}})
    emit({"type": "agent_event", "event": {"type": "content_start", "contentType": "tool", "toolName": "run_commands",
                                           "toolCallId": "t3", "input": {"commands": ["ls"]}}})
    emit({"type": "agent_event", "event": {"type": "content_end", "contentType": "tool", "toolName": "run_commands",
                                           "toolCallId": "t3", "output": "README.md\napi", "exitCode": 0}})
    u = {"inputTokens": usage[0], "outputTokens": usage[1], "cacheReadTokens": usage[2], "cacheWriteTokens": usage[3],
         "totalCost": cost(usage)}
    emit({"type": "agent_event", "event": {"type": "usage", "inputTokens": usage[0], "outputTokens": usage[1],
                                           "totalInputTokens": usage[0], "totalOutputTokens": usage[1]}})
    finish = "aborted" if MODE in ("v3-aborted", "v3-timeout") else "completed"
    emit({"type": "agent_event", "event": {"type": "done", "reason": finish, "text": "Done.", "iterations": 2}})
    emit({"type": "run_result", "finishReason": finish, "iterations": 2, "usage": u, "durationMs": 1234,
          "text": "Built the project.", "model": {"id": model, "provider": pid}})
    if MODE == "v3-aborted":
        emit({"type": "run_aborted", "reason": "external_abort", "message": "the run was aborted from outside"})
    if MODE == "v3-timeout":
        emit({"type": "error", "message": "run timed out after %ss" % opts.get("-t", "?")}, sys.stderr)
        sys.exit(1)


def say(kind, text, **extra):
    TIME[0] += 1
    emit({"ts": TIME[0], "type": "say", "say": kind, "text": text, **extra})


def run_v2(opts, prompt):
    pid, model, url, headers, dialect = config_v2(opts)
    emit({"type": "task_started", "taskId": "1764000000000"})
    say("task", prompt)
    info = {"providerId": pid, "modelId": model, "mode": "act"}
    for turn in range(2):
        answer, error = call(url, headers, dialect, model)
        if error:
            TIME[0] += 1
            emit({"ts": TIME[0], "type": "ask", "ask": "api_req_failed", "text": error})
            emit({"type": "error", "message": error})
            sys.exit(1)
        text, usage = answer
        req = {"request": "build it", "tokensIn": usage[0], "tokensOut": usage[1], "cacheReads": usage[2],
               "cacheWrites": usage[3], "cost": cost(usage)}
        say("api_req_started", json.dumps(req), modelInfo=info)
        say("text", text)
        if turn == 0:
            write_tree()
            say("tool", json.dumps({"tool": "newFileCreated", "path": "README.md", "content": "# Built"}))
            say("command", "ls -la")
            say("command_output", "README.md\napi")
            say("error_retry", "the provider was busy")
    say("completion_result", "Built the project.")


main()
