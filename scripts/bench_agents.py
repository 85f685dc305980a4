"""`make bench`'s agents section: each real agent (aider and mini-swe-agent,
from scripts/bootstrap.sh's .venv-agents/) runs BENCH_AGENT_RUNS jobs, one at
a time, through the supervisor in the sandbox (JOB_NETWORK=proxy), against the
scripted OpenAI-compatible server on loopback (Tests/Fixtures/fake_provider.py).
Per agent, the medians of what the job child logs for each run
("<agent>: ran S s (first output after T s), peak memory M MB"): start-up
(spawn to its first output line), the run, its peak memory (RUSAGE_CHILDREN's maxrss),
and the job's generateMs."""
import os
import re
import statistics
import subprocess
import sys

AGENTS = (("aider", "aider", "aider", "AIDER_CMD", "aider"),
          ("mini-swe-agent", "mini-swe-agent", "mini", "MINI_SWE_AGENT_CMD", "mini"))
LINE = re.compile(r"^(?P<agent>[\w-]+): ran (?P<run>[\d.]+) s \(first output after (?P<first>[\d.]+) s\), "
                  r"peak memory (?P<mb>\d+) MB$")


def run(root, bin_dir, tmp, client, seed, env, log):
    runs = int(os.environ.get("BENCH_AGENT_RUNS", "3"))
    out = {}
    for name, venv, exe, variable, scenario in AGENTS:
        path = os.path.join(root, ".venv-agents", venv, "bin", exe)
        if not os.access(path, os.X_OK):
            out[name] = {"error": f"{path} is missing: run scripts/bootstrap.sh"}
            continue
        log(f"agents: {name}, {runs} jobs one at a time")
        db = "bench_agent_" + name.replace("-", "_")
        provider = subprocess.Popen([sys.executable, os.path.join(root, "Tests/Fixtures/fake_provider.py"), scenario,
                                     os.path.join(tmp, db + "-requests.jsonl"), os.path.join(tmp, db + "-outside")],
                                    stdout=subprocess.PIPE, text=True)
        try:
            port = int(provider.stdout.readline())
            ids = seed(db, runs)
            subprocess.run([os.path.join(bin_dir, "agent-runner"), "run", "--exit-when-idle"], cwd=tmp, check=True,
                           env=env(db, GENERATORS=name, RUNNER_CONCURRENCY=1, JOB_MAX_ATTEMPTS=1,
                                   CLINE_PROVIDER=f"http://127.0.0.1:{port}/v1", CLINE_MODEL="bench-model",
                                   CLINE_API_KEY="sk-bench-agent-key-0123456789", **{variable: path}),
                           stderr=subprocess.DEVNULL, timeout=600)
        finally:
            provider.kill()
            provider.wait()
        figures = {"first_output_s": [], "run_s": [], "peak_memory_mb": [], "generate_ms": []}
        done = 0
        for jid in ids:
            d = client[db].jobs.find_one({"_id": jid})
            done += d["status"] == "done"
            figures["generate_ms"] += [d.get("metadata", {}).get("timings", {}).get("generateMs")] if d["status"] == "done" else []
            for line in d.get("logs", []):
                m = LINE.match(line)
                if m and m["agent"] == name:
                    figures["first_output_s"].append(float(m["first"]))
                    figures["run_s"].append(float(m["run"]))
                    figures["peak_memory_mb"].append(int(m["mb"]))
        out[name] = {"done": done, "runs": runs, **{k + "_median": statistics.median(v) if v else None
                                                  for k, v in figures.items()}}
    return out
