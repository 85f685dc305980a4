#!/usr/bin/env python3
"""agent-runner benchmark: drives the release binaries against the database
that scripts/with-db.sh started (MONGODB_URI) and prints ONE JSON line.

Measures (see docs/performance.md):
  throughput      40 queued short jobs (BENCH_SHORT_JOBS), scaffold generator,
                  SANDBOX=enforce and JOB_NETWORK=proxy, pushes to local bare
                  repositories, concurrency 2 -> jobs/s, and the per-job
                  time split (the jobs' metadata.timings, medians)
  baseline        the seed's loop on the same server in the same run: the
                  same number of jobs one at a time, no sandbox: claim
                  (find_one_and_update), read the project, write the files
                  one scaffold job generates, commit and push with the git
                  CLI, push the log lines, write the outcome; it sleeps its
                  2 s poll only when no job was found. The two run in
                  alternating halves (BENCH_ROUNDS=2: seed, runner, runner,
                  seed), so a load that drifts weighs on both. Target:
                  throughput >= 1.5x this loop (issue 15)
  claim latency   20 jobs arriving one at a time into an idle supervisor
                  (insert -> startedAt), p50 and p99
  memory and CPU  supervisor RSS idle and while 2 children run; idle CPU %
  time split      per job: spawn+sandbox, generation, commit+push, database
  database rate   the server's own claim-and-finish rate (findAndModify +
                  update, one client) and throughput as a fraction of it
  claim scaling   the supervisor's claim (agent-runner bench-claim) with 100
                  and with 100,000 pending jobs: the first claim of a process
                  (it reads the queue's shape once) and the median of 20 more;
                  once with the seed's documents (createdAt, projectId) and
                  once with the Architex app's (created_at, project_id)
  log batching    database updates for a job that prints 5,000 lines
  bson conversion microseconds to convert the claim's, a heartbeat's and a
                  200-line log append's documents (agent-runner bench-bson, in
                  process): libbson's builders and iterators vs the JSON text
                  path
  metering        the egress proxy's cost per model call (Tests/Fixtures/
                  fake_provider.py behind the release proxy process, Anthropic
                  messages, JSON and streamed): the added latency (median of
                  the call through the proxy minus the same call made
                  directly) and the proxy's CPU per call, which include the
                  metering (usage read from the answer, the usage event)
  wire requests   every MongoDB request the supervisor sends, counted by a
                  TCP proxy in front of the database (Tests/Fixtures/
                  mongo_proxy.py --count): per short job (40 scaffold jobs at
                  concurrency 2, the whole run divided by the jobs, monitoring
                  and change stream included) and per running job per second
                  (30 long jobs under one supervisor, steady state), with the
                  supervisor's CPU and threads then (the most /proc/<pid>/task
                  held; target: at most 24), and where the requests go by command;
                  of them, the job event stream's inserts (job_events; target:
                  at most 1 per short job; its indexes are made once per start)
                  and the events per job
  agents          aider and mini-swe-agent (.venv-agents/), BENCH_AGENT_RUNS
                  jobs each in the sandbox against the scripted provider on
                  loopback: start-up (spawn to first output), run time, peak
                  memory, generateMs (medians; scripts/bench_agents.py)


BENCH_ONLY=throughput,baseline (comma-separated section names: throughput,
baseline, latency, database, claim, logs, bson, metering, requests, agents) runs only those
sections.
"""
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from datetime import datetime, timedelta, timezone

import pymongo
import bench_agents
from bson import ObjectId

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("BIN_DIR", ".build/release"))
URI = os.environ["MONGODB_URI"]
client = pymongo.MongoClient(URI)
TMP = tempfile.mkdtemp(prefix="agent-runner-bench.")
SPEC = json.load(open(os.path.join(ROOT, "examples/ecommerce-seed-shape.json")))


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def env(db, **extra):
    e = {"PATH": "/usr/local/bin:/usr/bin:/bin", "MONGODB_URI": URI, "MONGO_DB_NAME": db,
         "WORKDIR_ROOT": os.path.join(TMP, "work-" + db), "GENERATORS": "scaffold", "CLINE_ENABLED": "false",
         "AGENT_RUNNER_JOB_PATH": os.path.join(BIN, "agent-runner-job"), "KEEP_WORKSPACES": "never",
         "LOG_LEVEL": "warning",
         # The bench's bare remotes are below TMP (never TMP itself).
         "GIT_LOCAL_REMOTE_ROOTS": TMP}
    e.update({k: str(v) for k, v in extra.items()})
    return e


def seed(db, n, remotes=True, spec=SPEC):
    ids = []
    for i in range(n):
        repo = None
        if remotes:
            repo = os.path.join(TMP, db, f"r{i}.git")
            subprocess.run(["git", "init", "-q", "--bare", "-b", "main", repo], check=True)
            repo = "file://" + repo
        pid = str(ObjectId())
        client[db].projects.insert_one({"_id": pid, "name": f"P{i}", "githubRepoUrl": repo})
        jid = str(ObjectId())
        client[db].jobs.insert_one({"_id": jid, "projectId": pid, "architecture_spec": spec, "status": "pending",
                                    "logs": [], "createdAt": datetime.now(timezone.utc)})
        ids.append(jid)
    return ids


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def thread_count(pid):
    """The threads of process `pid` now (entries of /proc/<pid>/task)."""
    return len(os.listdir(f"/proc/{pid}/task"))


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


SHORT_JOBS = int(os.environ.get("BENCH_SHORT_JOBS", "40"))


def throughput(n=SHORT_JOBS, db="bench_tp"):
    """`n` short scaffold jobs through the runner: concurrency 2, the sandbox
    enforced and JOB_NETWORK=proxy (the production defaults, set explicitly),
    pushes to local bare repositories."""
    ids = seed(db, n)
    sup = subprocess.Popen([os.path.join(BIN, "agent-runner"), "run", "--exit-when-idle", "--concurrency", "2"],
                           env=env(db, SANDBOX="enforce", JOB_NETWORK="proxy"), cwd=TMP, stderr=subprocess.DEVNULL)
    start = time.monotonic()
    peak = 0
    while sup.poll() is None:
        peak = max(peak, rss_kb(sup.pid))
        time.sleep(0.05)
    elapsed = time.monotonic() - start
    docs = list(client[db].jobs.find({"_id": {"$in": ids}}))
    done = [d for d in docs if d["status"] == "done"]
    timings = [d["metadata"].get("timings", {}) for d in done]
    # Proof that the figure is for confined jobs: every job logged its sandbox.
    sandboxed = sum(1 for d in done if any(l.startswith("sandbox: landlock") for l in d.get("logs", [])))

    def med(key):
        vals = [t[key] for t in timings if key in t]
        return round(statistics.median(vals), 1) if vals else None
    keys = sorted({k for t in timings for k in t})
    return {"jobs": len(ids), "done": len(done), "sandboxed": sandboxed, "seconds": round(elapsed, 2),
            "jobs_per_s": round(len(done) / elapsed, 2), "rss_mb_with_2_children": round(peak / 1024, 1),
            "split_ms_median": {"spawn_and_sandbox": med("spawnMs"), "generation": med("generateMs"),
                                "commit_and_push": med("publishMs"), "waiting_for_batched_writes": med("databaseMs")},
            "timings_ms_median": {k: med(k) for k in keys}, "timings": timings, "done_count": len(done)}


def interleaved(files, n=SHORT_JOBS, rounds=int(os.environ.get("BENCH_ROUNDS", "2"))):
    """The seed's loop and the runner on the same server in the same run,
    `n` jobs each, in `rounds` alternating halves (A B B A ...), so that a
    load that drifts during the run (a shared machine) weighs on both alike.
    Each figure is its jobs over its summed seconds."""
    per = max(1, n // rounds)
    base_s = tp_s = 0.0
    base_n = tp_n = sandboxed = 0
    timings, peak = [], 0
    for r in range(rounds):
        for which in (("base", "tp") if r % 2 == 0 else ("tp", "base")):
            if which == "base":
                b = baseline(files, per, db=f"bench_base{r}")
                base_s, base_n = base_s + b["seconds"], base_n + b["jobs"]
            else:
                t = throughput(per, db=f"bench_tp{r}")
                tp_s, tp_n = tp_s + t["seconds"], tp_n + t["done_count"]
                sandboxed += t["sandboxed"]
                timings += t["timings"]
                peak = max(peak, t["rss_mb_with_2_children"])

    def med(key):
        vals = [t[key] for t in timings if key in t]
        return round(statistics.median(vals), 1) if vals else None
    keys = sorted({k for t in timings for k in t})
    base = {"jobs": base_n, "seconds": round(base_s, 2), "jobs_per_s": round(base_n / base_s, 2)}
    tp = {"jobs": per * rounds, "done": tp_n, "sandboxed": sandboxed, "rounds": rounds, "seconds": round(tp_s, 2),
          "jobs_per_s": round(tp_n / tp_s, 2), "rss_mb_with_2_children": peak,
          "split_ms_median": {"spawn_and_sandbox": med("spawnMs"), "generation": med("generateMs"),
                              "commit_and_push": med("publishMs"), "waiting_for_batched_writes": med("databaseMs")},
          "timings_ms_median": {k: med(k) for k in keys}}
    return base, tp


def scaffold_tree():
    """The files one scaffold job generates for SPEC, made by the runner
    itself (one job, untimed): what the seed-shaped loop writes per job."""
    db = "bench_tree"
    [jid] = seed(db, 1)
    subprocess.run([os.path.join(BIN, "agent-runner"), "run", "--exit-when-idle"], env=env(db), cwd=TMP,
                   stderr=subprocess.DEVNULL, check=True)
    assert client[db].jobs.find_one({"_id": jid})["status"] == "done"
    tree = os.path.join(TMP, "tree")
    subprocess.run(["git", "clone", "-q", os.path.join(TMP, db, "r0.git"), tree], check=True)
    shutil.rmtree(os.path.join(tree, ".git"))
    files = {}
    for base, _, names in os.walk(tree):
        for name in names:
            path = os.path.join(base, name)
            files[os.path.relpath(path, tree)] = open(path, "rb").read()
    return files


def baseline(files, n=SHORT_JOBS, db="bench_base"):
    """The seed's loop, as the seed runs it: one job at a time, no sandbox;
    claim with find_one_and_update, read the project, write the generated
    files, commit and push with the git CLI, push the log lines, write the
    outcome; sleep the 2 s poll only when no job was found."""
    seed(db, n)
    start = time.monotonic()
    finished = 0
    while finished < n:
        job = client[db].jobs.find_one_and_update(
            {"status": "pending"}, {"$set": {"status": "running", "startedAt": datetime.now(timezone.utc)}},
            sort=[("createdAt", 1)], return_document=pymongo.ReturnDocument.AFTER)
        if not job:
            time.sleep(2)
            continue
        project = client[db].projects.find_one({"_id": job["projectId"]})
        work = os.path.join(TMP, "base-" + job["_id"])
        for rel, data in files.items():
            path = os.path.join(work, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        git = ["git", "-C", work, "-c", "user.name=Bot", "-c", "user.email=b@x"]
        subprocess.run(["git", "init", "-q", "-b", "main", work], check=True)
        subprocess.run(git + ["add", "-A"], check=True)
        subprocess.run(git + ["commit", "-q", "-m", "Generate"], check=True)
        subprocess.run(git + ["push", "-q", project["githubRepoUrl"], "main"], check=True)
        client[db].jobs.update_one({"_id": job["_id"]}, {"$push": {"logs": {"$each": [
            f"wrote {len(files)} files", "committed", "pushed"]}}})
        client[db].jobs.update_one({"_id": job["_id"]}, {"$set": {
            "status": "done", "finishedAt": datetime.now(timezone.utc), "metadata": {"files": len(files)}}})
        shutil.rmtree(work)
        finished += 1
    elapsed = time.monotonic() - start
    assert client[db].jobs.count_documents({"status": "done"}) == n
    return {"jobs": n, "seconds": round(elapsed, 2), "jobs_per_s": round(n / elapsed, 2)}


def latency_and_idle():
    db = "bench_lat"
    sup = subprocess.Popen([os.path.join(BIN, "agent-runner"), "run", "--concurrency", "2"],
                           env=env(db, RUNNER_POLL_SECONDS=2), cwd=TMP, stderr=subprocess.DEVNULL)
    time.sleep(3)
    idle_rss = rss_kb(sup.pid)
    t0, c0 = time.monotonic(), cpu_ticks(sup.pid)
    time.sleep(10)
    idle_cpu = (cpu_ticks(sup.pid) - c0) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0) * 100
    latencies = []
    for _ in range(20):
        [jid] = seed(db, 1)
        created = client[db].jobs.find_one({"_id": jid})["createdAt"]
        while True:
            d = client[db].jobs.find_one({"_id": jid}, {"startedAt": 1, "status": 1})
            if d.get("startedAt") and d["status"] in ("done", "failed", "pending"):
                latencies.append((d["startedAt"] - created).total_seconds() * 1000)
                break
            time.sleep(0.02)
        time.sleep(0.3)
    sup.terminate()
    sup.wait(30)
    latencies.sort()
    return {"claim_latency_ms_p50": round(statistics.median(latencies), 1),
            "claim_latency_ms_p99": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
            "idle_rss_mb": round(idle_rss / 1024, 1), "idle_cpu_percent": round(idle_cpu, 2)}


CLAIM_QUERY = lambda now: {"$or": [
    {"status": "pending", "cancelRequested": {"$ne": True},
     "$or": [{"notBefore": {"$exists": False}}, {"notBefore": None}, {"notBefore": {"$lte": now}}]},
    {"status": "running", "lease.expiresAt": {"$lt": now}}]}


def database_rate(n=200):
    db = "bench_db"
    coll = client[db].jobs
    coll.create_index([("status", 1), ("priority", -1), ("createdAt", 1)])
    coll.insert_many([{"status": "pending", "createdAt": datetime.now(timezone.utc), "architecture_spec": SPEC}
                      for _ in range(n)])
    start = time.monotonic()
    for _ in range(n):
        now = datetime.now(timezone.utc)
        d = coll.find_one_and_update(CLAIM_QUERY(now), {"$set": {"status": "running", "lease": {"token": "t"}}},
                                     sort=[("priority", -1), ("createdAt", 1)])
        coll.update_one({"_id": d["_id"], "lease.token": "t"}, {"$set": {"status": "done"}, "$unset": {"lease": ""}})
    return round(n / (time.monotonic() - start), 1)


def claim_time(pending, app_shape=False):
    """The supervisor's own claim (`agent-runner bench-claim`) with `pending`
    jobs queued: the first claim (which reads the queue's shape once per
    process) and the median of the next 20. `app_shape`: the jobs carry the
    Architex app's `created_at` and `project_id` instead."""
    db = f"bench_scale_{pending}" + ("_app" if app_shape else "")
    date_field, project_field = ("created_at", "project_id") if app_shape else ("createdAt", "projectId")
    coll = client[db].jobs
    # The indexes first (bench-claim with nothing to claim creates them): built
    # over 100,000 documents afterwards, they outlast the driver's 10 s socket
    # timeout on a loaded machine.
    subprocess.run([os.path.join(BIN, "agent-runner"), "bench-claim", "--count", "0"], cwd=TMP, env=env(db),
                   check=True, capture_output=True)
    batch = []
    t0 = datetime.now(timezone.utc) - timedelta(hours=1)
    for i in range(pending):
        # One millisecond apart, so the expected claim order is exact.
        batch.append({"_id": f"j{i}", "status": "pending", project_field: f"p{i}", date_field: t0 + timedelta(milliseconds=i),
                      "architecture_spec": {"nodes": [], "edges": []}, "logs": [], "attempts": 0})
        if len(batch) == 5000:
            coll.insert_many(batch)
            batch = []
    if batch:
        coll.insert_many(batch)
    r = subprocess.run([os.path.join(BIN, "agent-runner"), "bench-claim", "--count", "21"], cwd=TMP, env=env(db),
                       check=True, capture_output=True, text=True)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    # Right order: the oldest jobs first.
    claimed = sorted(d["_id"] for d in coll.find({"status": "running"}, {"_id": 1}))
    client.drop_database(db)
    assert res["claimed"] == 21 and claimed == sorted(f"j{i}" for i in range(21)), (res, claimed[:25])
    return {"first": round(res["ms"][0], 1), "median": round(statistics.median(res["ms"][1:]), 2)}


def log_batching():
    db = "bench_logs"
    bindir = os.path.join(TMP, "chatty")
    os.makedirs(bindir)
    cline = os.path.join(bindir, "cline")
    with open(cline, "w") as f:
        f.write("#!/bin/sh\ni=0\nwhile [ $i -lt 5000 ]; do echo \"line $i\"; i=$((i+1)); done\n"
                "echo '# chatty' > README.md\necho x > a.txt\n")
    os.chmod(cline, 0o755)
    [jid] = seed(db, 1)
    before = client.admin.command("serverStatus")["opcounters"]["update"]
    subprocess.run([os.path.join(BIN, "agent-runner"), "run", "--exit-when-idle"], cwd=TMP, check=True,
                   env=env(db, GENERATORS="cline,scaffold", CLINE_ENABLED="true", CLINE_CMD=cline),
                   stderr=subprocess.DEVNULL)
    after = client.admin.command("serverStatus")["opcounters"]["update"]
    d = client[db].jobs.find_one({"_id": jid})
    return {"status": d["status"], "lines_printed": 5000, "log_lines_kept": len(d.get("logs", [])),
            "database_updates_for_the_job": after - before}


def bson_conversion():
    """The hot calls' BSON conversion (`agent-runner bench-bson`, no database):
    the claim (its guarded update, the job read back with the seed-shaped spec),
    a heartbeat and a 200-line log append, microseconds per call by the store's
    builder/iterator path and by the JSON text path it replaced."""
    r = subprocess.run([os.path.join(BIN, "agent-runner"), "bench-bson", "--spec",
                        os.path.join(ROOT, "examples/ecommerce-seed-shape.json")],
                       cwd=TMP, check=True, capture_output=True, text=True)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    for call in ("claim", "heartbeat", "log_append"):
        res[call]["text_over_builder"] = round(res[call]["text_us"] / res[call]["builder_us"], 1)
    return res


PROXY = os.path.join(ROOT, "Tests", "Fixtures", "mongo_proxy.py")


class CountingProxy:
    """A loopback proxy in front of the database that writes one line per
    request the supervisor sends (command name and collection)."""

    def __init__(self, tag):
        self.file = os.path.join(TMP, f"wire-{tag}.log")
        upstream = urllib.parse.urlsplit(URI).port
        self.process = subprocess.Popen([sys.executable, PROXY, str(upstream), "--count", self.file],
                                        stdout=subprocess.PIPE, text=True)
        self.port = int(self.process.stdout.readline())
        self.uri = f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def lines(self):
        try:
            with open(self.file) as f:
                return [line.strip() for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def stop(self):
        self.process.kill()
        self.process.wait()


def by_command(lines, divisor):
    """Requests per command name (e.g. `update jobs`), divided by `divisor`."""
    counts = collections.Counter(" ".join(line.split()[:2]) for line in lines)
    return {k: round(v / divisor, 3) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}


def requests_per_short_job(n=40):
    """40 short scaffold jobs at concurrency 2 through the counting proxy:
    every request of the run (start-up, claims, writes, monitoring, change
    stream) divided by the jobs."""
    db = "bench_wire_short"
    ids = seed(db, n)
    proxy = CountingProxy("short")
    try:
        start = time.monotonic()
        subprocess.run([os.path.join(BIN, "agent-runner"), "run", "--exit-when-idle", "--concurrency", "2"],
                       env=env(db, MONGODB_URI=proxy.uri), cwd=TMP, stderr=subprocess.DEVNULL, check=True)
        elapsed = time.monotonic() - start
        time.sleep(0.2)
        lines = proxy.lines()
    finally:
        proxy.stop()
    done = client[db].jobs.count_documents({"_id": {"$in": ids}, "status": "done"})
    # What the job's event stream adds per job: its inserts (batched with the
    # logs' flushes and the outcome); its indexes are made once per supervisor start.
    event_requests = sum(1 for line in lines if line.split()[:2] == ["insert", "job_events"])
    events = client[db].job_events.count_documents({"jobId": {"$in": ids}})
    return {"jobs": n, "done": done, "seconds": round(elapsed, 2), "requests": len(lines),
            "per_job": round(len(lines) / n, 2), "by_command_per_job": by_command(lines, n),
            "event_stream_requests_per_job": round(event_requests / n, 3), "events_per_job": round(events / n, 1)}


def requests_per_running_job(n=30, window=30.0):
    """30 long jobs (a fake `cline` that sleeps) under one supervisor: the
    requests per running job per second over `window` seconds of steady
    state, and the supervisor's CPU meanwhile."""
    db = "bench_wire_running"
    bindir = os.path.join(TMP, "sleepy")
    os.makedirs(bindir, exist_ok=True)
    cline = os.path.join(bindir, "cline")
    with open(cline, "w") as f:
        f.write("#!/bin/sh\necho 'thinking'\nsleep 900\n")
    os.chmod(cline, 0o755)
    ids = seed(db, n, remotes=False)
    proxy = CountingProxy("running")
    sup = subprocess.Popen([os.path.join(BIN, "agent-runner"), "run", "--concurrency", str(n)], cwd=TMP,
                           env=env(db, MONGODB_URI=proxy.uri, GENERATORS="cline,scaffold", CLINE_ENABLED="true",
                                   CLINE_CMD=cline, SHUTDOWN_GRACE_SECONDS=1),
                           stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while client[db].jobs.count_documents({"_id": {"$in": ids}, "status": "running", "stage": "generating"}) < n:
            if time.monotonic() > deadline or sup.poll() is not None:
                raise RuntimeError("the 30 long jobs did not all start")
            time.sleep(0.2)
        time.sleep(3)
        before, c0, t0 = len(proxy.lines()), cpu_ticks(sup.pid), time.monotonic()
        # The supervisor's threads, sampled through the window: the most it held.
        threads = thread_count(sup.pid)
        while time.monotonic() - t0 < window:
            time.sleep(0.5)
            threads = max(threads, thread_count(sup.pid))
        lines = proxy.lines()[before:]
        seconds = time.monotonic() - t0
        cpu = (cpu_ticks(sup.pid) - c0) / os.sysconf("SC_CLK_TCK") / seconds * 100
        rss = rss_kb(sup.pid)
    finally:
        sup.terminate()
        time.sleep(0.5)
        sup.terminate()
        try:
            sup.wait(60)
        except subprocess.TimeoutExpired:
            sup.kill()
            sup.wait()
        proxy.stop()
    return {"jobs": n, "seconds": round(seconds, 1), "requests": len(lines),
            "per_running_job_per_s": round(len(lines) / n / seconds, 4), "cpu_percent": round(cpu, 2),
            "rss_mb": round(rss / 1024, 1), "threads_max": threads, "by_command_per_s": by_command(lines, seconds)}


def metering(n=int(os.environ.get("BENCH_METERING_CALLS", "200"))):
    """Model calls direct to the stand-in provider and through the release
    egress proxy, alternating; per kind: medians (ms) and the proxy's CPU per call."""
    import http.client
    import socket
    import threading
    work = os.path.join(TMP, "metering")
    os.makedirs(work, exist_ok=True)
    provider = subprocess.Popen([sys.executable, os.path.join(ROOT, "Tests/Fixtures/fake_provider.py"), "ok",
                                 os.path.join(work, "requests.jsonl")], stdout=subprocess.PIPE)
    port = int(provider.stdout.readline())
    sock = os.path.join(work, "egress.sock")
    ticket = {"socketPath": sock, "rules": [], "providerKey": "sk-bench-key", "providerHeaders": [],
              "provider": {"kind": "anthropic", "upstreamBaseURL": f"http://127.0.0.1:{port}"}}
    proxy = subprocess.Popen([os.path.join(BIN, "agent-runner-job"), "--egress-proxy"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    proxy.stdin.write((json.dumps(ticket) + "\n").encode())
    proxy.stdin.flush()
    assert json.loads(proxy.stdout.readline())["type"] == "ready"
    events = collections.Counter()

    def drain():
        for line in proxy.stdout:
            events[json.loads(line)["type"]] += 1
    threading.Thread(target=drain, daemon=True).start()

    def direct(body):
        c = http.client.HTTPConnection("127.0.0.1", port)
        c.request("POST", "/v1/messages", body, {"Content-Type": "application/json"})
        data = c.getresponse().read()
        c.close()
        return data

    def through(body):
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        s.sendall((f"POST /provider/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        return data

    out = {}
    try:
        for kind, stream in (("json", False), ("streamed", True)):
            body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": stream,
                               "messages": [{"role": "user", "content": "x" * 4000}]}).encode()
            direct(body), through(body)  # warm-up
            d, p, cpu = [], [], 0
            for _ in range(n):
                t = time.perf_counter()
                direct(body)
                d.append((time.perf_counter() - t) * 1000)
                before = cpu_ticks(proxy.pid)
                t = time.perf_counter()
                answer = through(body)
                p.append((time.perf_counter() - t) * 1000)
                cpu += cpu_ticks(proxy.pid) - before
                assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
            out[kind] = {"direct_ms_median": round(statistics.median(d), 2),
                         "proxy_ms_median": round(statistics.median(p), 2),
                         "added_ms_median": round(statistics.median(p) - statistics.median(d), 2),
                         "proxy_cpu_ms_per_call": round(cpu * tick_ms / n, 3)}
        time.sleep(0.5)
        out["usage_events"] = events["usage"]
        out["calls"] = 2 * (n + 1)
    finally:
        proxy.kill()
        provider.kill()
        proxy.wait()
        provider.wait()
    return out


def requests_section():
    log("wire requests: 40 short jobs at concurrency 2, through a counting proxy")
    short = requests_per_short_job()
    log("wire requests: 30 long jobs running under one supervisor")
    running = requests_per_running_job()
    return {
        "db_requests_per_short_job": short["per_job"],
        "event_stream_requests_per_short_job": short["event_stream_requests_per_job"],
        "events_per_short_job": short["events_per_job"],
        "db_requests_per_running_job_per_s": running["per_running_job_per_s"],
        "supervisor_cpu_percent_with_30_running": running["cpu_percent"],
        "supervisor_rss_mb_with_30_running": running["rss_mb"],
        "supervisor_threads_with_30_running": running["threads_max"],
        "db_requests": {"short_jobs": short, "running_jobs": running},
    }, {
        "requests_per_short_job_le_8": short["per_job"] <= 8,
        "event_stream_requests_per_short_job_le_1": short["event_stream_requests_per_job"] <= 1,
        "requests_per_running_job_per_s_le_0_15": running["per_running_job_per_s"] <= 0.15,
        "cpu_with_30_running_le_5_percent": running["cpu_percent"] <= 5,
        "threads_with_30_running_le_24": running["threads_max"] <= 24,
    }


SECTIONS = ("throughput", "baseline", "latency", "database", "claim", "logs", "bson", "metering", "requests", "agents")
# BENCH_ONLY=throughput,baseline runs only those sections (the JSON line then
# holds only their figures and targets).
ONLY = set(filter(None, os.environ.get("BENCH_ONLY", ",".join(SECTIONS)).split(",")))


def main():
    unknown = ONLY - set(SECTIONS)
    assert not unknown, f"BENCH_ONLY: unknown section(s) {sorted(unknown)}; known: {', '.join(SECTIONS)}"
    out, targets = {}, {}
    if ONLY & {"throughput", "baseline"}:
        log("the scaffold tree of one job (untimed warm-up)")
        files = scaffold_tree()
    if {"throughput", "baseline"} <= ONLY:
        log(f"baseline and throughput, {SHORT_JOBS} jobs each in alternating halves: the seed's loop (one at a "
            "time, no sandbox, git CLI) and the runner (concurrency 2, sandbox enforced, JOB_NETWORK=proxy)")
        base, tp = interleaved(files)
    elif "baseline" in ONLY:
        log(f"baseline: the seed's loop, {SHORT_JOBS} jobs one at a time, no sandbox, git CLI")
        base = baseline(files)
    elif "throughput" in ONLY:
        log(f"throughput: {SHORT_JOBS} jobs, concurrency 2, sandbox enforced, JOB_NETWORK=proxy")
        tp = throughput()
    if "baseline" in ONLY:
        out.update({"baseline_jobs_per_s": base["jobs_per_s"], "baseline": base})
    if "throughput" in ONLY:
        for k in ("timings", "done_count"):
            tp.pop(k, None)
        out.update({"jobs_per_s": tp["jobs_per_s"], "throughput": tp,
                    "supervisor_rss_mb_with_2_children": tp["rss_mb_with_2_children"],
                    "per_job_split_ms_median": tp["split_ms_median"],
                    "per_job_timings_ms_median": tp["timings_ms_median"]})
    if {"throughput", "baseline"} <= ONLY:
        out["speedup_vs_baseline"] = round(tp["jobs_per_s"] / base["jobs_per_s"], 2)
        targets["throughput_ge_1_5x_seed_loop"] = tp["jobs_per_s"] >= 1.5 * base["jobs_per_s"]
    if "latency" in ONLY:
        log("claim latency, idle RSS and CPU")
        lat = latency_and_idle()
        out.update(lat)
        targets.update({"claim_latency_p50_le_50ms": lat["claim_latency_ms_p50"] <= 50,
                        "claim_latency_p99_le_200ms": lat["claim_latency_ms_p99"] <= 200,
                        "idle_rss_le_30mb": lat["idle_rss_mb"] <= 30,
                        "idle_cpu_le_1_percent": lat["idle_cpu_percent"] <= 1})
    if "database" in ONLY:
        log("database claim-and-finish rate")
        rate = database_rate()
        out["database_claim_finish_per_s"] = rate
        if "throughput" in ONLY:
            out["jobs_per_s_fraction_of_database"] = round(tp["jobs_per_s"] / rate, 3)
    if "claim" in ONLY:
        log("claim time at 100 and 100,000 pending jobs")
        small, large = claim_time(100), claim_time(100_000)
        log("the same with the Architex app's documents")
        app_small, app_large = claim_time(100, app_shape=True), claim_time(100_000, app_shape=True)
        out.update({"claim_ms_at_100_pending": small["median"], "claim_ms_at_100000_pending": large["median"],
                    "first_claim_ms_at_100_pending": small["first"], "first_claim_ms_at_100000_pending": large["first"],
                    "app_shape_claim_ms_at_100_pending": app_small["median"],
                    "app_shape_claim_ms_at_100000_pending": app_large["median"]})
        # Flat: 1,000 times the jobs may cost at most twice the time per claim.
        targets.update({"claim_flat_100_to_100000": large["median"] <= 2 * max(small["median"], 1.0),
                        "app_shape_claim_flat_100_to_100000": app_large["median"] <= 2 * max(app_small["median"], 1.0)})
    if "logs" in ONLY:
        log("log batching: a job printing 5,000 lines")
        out["log_batching"] = log_batching()
    if "bson" in ONLY:
        log("BSON conversion: builders and iterators vs the JSON text path")
        out["bson_conversion_us"] = bson_conversion()
    if "metering" in ONLY:
        log("metering: model calls direct and through the egress proxy, JSON and streamed")
        out["metering"] = metering()
    if "agents" in ONLY:
        log("agents: aider and mini-swe-agent in the sandbox against the scripted provider")
        out["agents"] = bench_agents.run(ROOT, BIN, TMP, client, seed, env, log)
    if "requests" in ONLY:
        figures, wire_targets = requests_section()
        out.update(figures)
        targets.update(wire_targets)
    out["targets"] = targets
    print(json.dumps(out))
    shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
