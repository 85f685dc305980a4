"""The dashboard over plain HTTP: sign-in, 401s, CSRF, bad input, the API and its SSE stream."""

import http.client
import json
import os
import re
import secrets
import subprocess
import time
import urllib.parse

import pytest
from conftest import BUILD, TOKEN, event_doc, now, quote, start_dashboard

PAGES = ["/", "/jobs", "/jobs/x", "/projects/x", "/runners"]
APIS = ["/api/queue", "/api/jobs", "/api/jobs/x", "/api/jobs/x/logs", "/api/jobs/x/live", "/api/jobs/x/events",
        "/api/jobs/x/events.jsonl", "/api/jobs/x/events/stream", "/api/projects/x", "/api/runners", "/api/events"]


class Client:
    """A tiny HTTP client that keeps cookies and never follows redirects."""

    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.cookies = {}

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=20)
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = "; ".join("%s=%s" % kv for kv in self.cookies.items())
        if isinstance(body, dict):
            body = urllib.parse.urlencode(body)
            h["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read().decode()
        for value in r.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            val = rest.split(";")[0]
            if "Max-Age=0" in value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = val
        conn.close()
        return r, data

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def sign_in(self, token=TOKEN):
        r, page = self.get("/signin")
        assert r.status == 200
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
        return self.post("/signin", {"csrf": csrf, "token": token, "next": "/jobs"})

    def csrf(self):
        r, page = self.get("/")
        return re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page).group(1)


@pytest.fixture
def client(dashboard):
    return Client(dashboard.url)


@pytest.fixture
def session(dashboard):
    c = Client(dashboard.url)
    r, _ = c.sign_in()
    assert r.status == 303
    return c


@pytest.fixture
def failed_job(database):
    job = "http-failed-" + secrets.token_hex(4)
    database.jobs.insert_one({"_id": job, "projectId": "http-project", "status": "failed", "stage": "finished",
                              "attempts": 2, "createdAt": now(), "logs": [],
                              "error": {"code": "timeout", "message": "took too long"}})
    return job


def test_without_a_session_pages_redirect_and_apis_answer_401(client):
    for path in PAGES:
        r, _ = client.get(path)
        assert r.status == 303, path
        assert r.getheader("Location").startswith("/signin?next="), path
    for path in APIS:
        r, body = client.get(path)
        assert r.status == 401, path
        assert "error" in json.loads(body)
    for path in ["/jobs/x/retry", "/jobs/x/cancel", "/signout"]:
        r, _ = client.post(path, {"csrf": "x"})
        assert r.status in (401, 303), path
    for path in ["/api/jobs/x/retry", "/api/jobs/x/cancel"]:
        r, _ = client.post(path)
        assert r.status == 401, path
    # The sign-in page, the assets and /healthz are public.
    for path in ["/signin", "/assets/app.js", "/assets/app.css", "/healthz"]:
        assert client.get(path)[0].status == 200, path


def test_bearer_token_is_compared_whole(client):
    wrong = [TOKEN[:-1], TOKEN + "0", TOKEN[:-1] + ("0" if TOKEN[-1] != "0" else "1"),
             ("X" if TOKEN[0] != "X" else "Y") + TOKEN[1:], "", TOKEN.upper(), TOKEN[: len(TOKEN) // 2]]
    for token in wrong:
        r, _ = client.get("/api/queue", headers={"Authorization": "Bearer " + token})
        assert r.status == 401, token
    r, body = client.get("/api/queue", headers={"Authorization": "Bearer " + TOKEN})
    assert r.status == 200
    assert set(json.loads(body)["counts"]) == {"pending", "running", "done", "failed", "cancelled"}


def test_sign_in_sets_a_strict_http_only_cookie(client):
    r, page = client.sign_in("wrong-" + TOKEN)
    assert r.status == 401 and "not valid" in page
    assert "ar_session" not in client.cookies
    r, _ = client.sign_in()
    assert r.status == 303 and r.getheader("Location") == "/jobs"
    cookie = [c for c in r.headers.get_all("Set-Cookie") if c.startswith("ar_session=")][0]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert client.get("/jobs")[0].status == 200
    # A forged session id is no session.
    forged = Client(client.host and "http://%s:%d" % (client.host, client.port))
    forged.cookies["ar_session"] = client.cookies["ar_session"][:-1] + "0"
    if forged.cookies["ar_session"] == client.cookies["ar_session"]:
        forged.cookies["ar_session"] = client.cookies["ar_session"][:-1] + "1"
    assert forged.get("/")[0].status == 303


def test_sign_in_needs_its_form_token(client):
    client.get("/signin")
    r, _ = client.post("/signin", {"csrf": "0" * 64, "token": TOKEN})
    assert r.status == 403
    r, _ = client.post("/signin", {"token": TOKEN})
    assert r.status == 403
    assert "ar_session" not in client.cookies


def test_state_changes_need_the_csrf_token(session, database, failed_job):
    path = "/jobs/%s/retry" % quote(failed_job)
    for body in [{}, {"csrf": ""}, {"csrf": "0" * 64}]:
        r, _ = session.post(path, body)
        assert r.status == 403, body
    r, _ = session.post("/api/jobs/%s/retry" % quote(failed_job))
    assert r.status == 403
    r, _ = session.post("/api/jobs/%s/retry" % quote(failed_job), headers={"X-CSRF-Token": "f" * 64})
    assert r.status == 403
    assert database.jobs.find_one({"_id": failed_job})["status"] == "failed"

    r, _ = session.post(path, {"csrf": session.csrf()})
    assert r.status == 303 and r.getheader("Location").endswith("?notice=retried")
    assert database.jobs.find_one({"_id": failed_job})["status"] == "pending"
    # Again: a pending job cannot be retried (409); it can be cancelled through the API.
    r, body = session.post("/api/jobs/%s/retry" % quote(failed_job), headers={"X-CSRF-Token": session.csrf()})
    assert r.status == 409 and "not failed or cancelled" in json.loads(body)["error"]
    r, body = session.post("/api/jobs/%s/cancel" % quote(failed_job), headers={"X-CSRF-Token": session.csrf()})
    assert r.status == 200 and json.loads(body)["ok"] is True
    assert database.jobs.find_one({"_id": failed_job})["status"] == "cancelled"


def test_bearer_api_clients_need_no_csrf(client, database, failed_job):
    r, body = client.post("/api/jobs/%s/retry" % quote(failed_job), headers={"Authorization": "Bearer " + TOKEN})
    assert r.status == 200, body
    assert database.jobs.find_one({"_id": failed_job})["status"] == "pending"


def test_bad_filters_are_400(session):
    for query in ["status=exploded", "page=0", "page=-1", "page=abc", "limit=1000", "q=" + "a" * 201,
                  "q=%zz", "project=a%01b"]:
        assert session.get("/jobs?" + query)[0].status == 400, query
        r, body = session.get("/api/jobs?" + query)
        assert r.status == 400, query
        assert json.loads(body)["error"]
    assert session.get("/api/jobs/x/logs?skip=-1")[0].status == 400
    r, body = session.get("/api/jobs?status=failed&q=%5B(*%2B")   # regex metacharacters are literal
    assert r.status == 200 and json.loads(body)["jobs"] == []


def test_unknown_ids_are_404(session):
    csrf = session.csrf()
    for path in ["/jobs/no-such-job", "/projects/no-such-project", "/jobs/" + "a" * 200, "/jobs/0123456789abcdef01234567"]:
        assert session.get(path)[0].status == 404, path
    for path in ["/api/jobs/no-such-job", "/api/jobs/no-such-job/logs", "/api/jobs/no-such-job/events",
                 "/api/jobs/no-such-job/live", "/api/jobs/no-such-job/events.jsonl", "/api/jobs/no-such-job/events/stream",
                 "/api/projects/no-such-project", "/no/such/page"]:
        assert session.get(path)[0].status == 404, path
    assert session.post("/jobs/no-such-job/retry", {"csrf": csrf})[0].status == 404
    assert session.post("/api/jobs/no-such-job/cancel", headers={"X-CSRF-Token": csrf})[0].status == 404


def test_odd_documents_do_not_break_pages(session, database):
    odd = "odd-" + secrets.token_hex(4)
    database.jobs.insert_one({"_id": odd, "projectId": {"weird": True}, "status": {"no": "string"}, "logs": "text",
                              "metadata": [1, 2], "errors": "none", "error": 5, "createdAt": "yesterday",
                              "attempts": "many"})
    try:
        for path in ["/jobs/" + odd, "/jobs", "/", "/api/jobs/" + odd, "/api/jobs/%s/logs" % odd, "/api/jobs"]:
            assert session.get(path)[0].status == 200, path
    finally:
        database.jobs.delete_one({"_id": odd})


def test_api_job_and_sse_stream(dashboard, database):
    job = "sse-" + secrets.token_hex(4)
    database.jobs.insert_one({"_id": job, "projectId": "sse-project", "status": "running", "stage": "generating",
                              "attempts": 1, "createdAt": now(), "logs": ["one", "two"]})
    auth = {"Authorization": "Bearer " + TOKEN}
    c = Client(dashboard.url)
    r, body = c.get("/api/jobs/" + job, headers=auth)
    doc = json.loads(body)
    assert r.status == 200 and doc["id"] == job and doc["logs"] == ["one", "two"]
    assert isinstance(doc["createdAt"], str) and doc["createdAt"].endswith("Z")
    r, body = c.get("/api/jobs/%s/logs?skip=1" % job, headers=auth)
    assert json.loads(body) == {"status": "running", "stage": "generating", "attempts": 1, "count": 2,
                                "lines": ["two"]}

    conn = http.client.HTTPConnection(c.host, c.port, timeout=20)
    conn.request("GET", "/api/jobs/%s/live?skip=1" % job, headers=auth)
    stream = conn.getresponse()
    assert stream.status == 200
    assert stream.getheader("Content-Type").startswith("text/event-stream")

    def next_event():
        name, data = None, None
        while True:
            line = stream.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "" and name:
                return name, data

    assert next_event() == ("log", {"line": "two"})
    assert next_event() == ("stage", {"status": "running", "stage": "generating", "attempts": 1})
    database.jobs.update_one({"_id": job}, {"$push": {"logs": "three <b>"}})
    assert next_event() == ("log", {"line": "three <b>"})
    database.jobs.update_one({"_id": job}, {"$set": {"status": "done", "stage": "finished"}})
    assert next_event() == ("stage", {"status": "done", "stage": "finished", "attempts": 1})
    assert next_event() == ("end", {"status": "done", "stage": "finished", "attempts": 1})
    conn.close()


def test_missing_or_short_token_exits_78(database):
    env = {k: v for k, v in os.environ.items() if k != "DASHBOARD_TOKEN"}
    env["MONGO_DB_NAME"] = database.name
    for token in [None, "short"]:
        if token:
            env["DASHBOARD_TOKEN"] = token
        p = subprocess.run([str(BUILD / "agent-runner-dashboard"), "--listen", "127.0.0.1:0"], env=env,
                           capture_output=True, text=True, timeout=60, cwd="/")
        assert p.returncode == 78
        assert "DASHBOARD_TOKEN" in p.stderr
        if token:
            assert token not in p.stderr


def test_agent_runner_dashboard_runs_the_dashboard_binary(database):
    proc, url, log = start_dashboard({"MONGO_DB_NAME": database.name, "DASHBOARD_TOKEN": TOKEN},
                                     args=("dashboard", "--listen", "127.0.0.1:0"),
                                     executable=str(BUILD / "agent-runner"))
    try:
        c = Client(url)
        assert c.get("/api/queue", headers={"Authorization": "Bearer " + TOKEN})[0].status == 200
        # exec: the process is the dashboard itself, not a child of agent-runner.
        assert os.readlink("/proc/%d/exe" % proc.pid).endswith("/agent-runner-dashboard")
    finally:
        proc.terminate()
        proc.wait(15)
        log.unlink()


def test_app_shaped_documents_are_listed_and_linked(session, database):
    """The Architex app writes snake_case aliases (project_id, created_at, project_name, repository_url)."""
    project = "app-project-" + secrets.token_hex(4)
    job = "app-job-" + secrets.token_hex(4)
    database.projects.insert_one({"_id": project, "project_name": "App <shape>",
                                  "repository_url": "https://git.example.test/app.git"})
    database.jobs.insert_one({"_id": job, "project_id": project, "status": "failed", "created_at": now(),
                              "error": {"code": "generator_failed", "message": "no generator produced files"}})
    r, body = session.get("/api/jobs?project=" + quote(project))
    jobs = json.loads(body)["jobs"]
    assert [j["id"] for j in jobs] == [job]
    assert jobs[0]["projectId"] == project and jobs[0]["createdAt"].endswith("Z")
    assert jobs[0]["error"]["code"] == "generator_failed"
    r, page = session.get("/projects/" + quote(project))
    assert r.status == 200
    assert "App &lt;shape&gt;" in page and 'href="https://git.example.test/app.git"' in page
    assert 'href="/jobs/%s"' % job in page
    r, body = session.get("/api/projects/" + quote(project))
    assert [j["id"] for j in json.loads(body)["jobs"]] == [job]


def test_sigterm_ends_open_event_streams_and_stops(database):
    proc, url, log = start_dashboard({"MONGO_DB_NAME": database.name, "DASHBOARD_TOKEN": TOKEN})
    try:
        c = Client(url)
        conn = http.client.HTTPConnection(c.host, c.port, timeout=30)
        conn.request("GET", "/api/events", headers={"Authorization": "Bearer " + TOKEN})
        stream = conn.getresponse()
        assert stream.status == 200
        assert stream.readline().startswith(b": stream open")
        proc.terminate()
        # The stream ends (EOF) instead of holding the shutdown up (a stream
        # left open would go on with events every 15 s: stop reading after 20 s).
        deadline = time.monotonic() + 20
        ended = False
        while time.monotonic() < deadline:
            if not stream.readline():
                ended = True
                break
        assert ended, "the event stream stayed open after SIGTERM"
        assert proc.wait(30) == 0
        conn.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.unlink()


def read_sse(stream):
    """The next (name, data) of an SSE response."""
    name, data = None, None
    while True:
        raw = stream.readline()
        if raw == b"":
            raise AssertionError("stream ended")
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
        elif line == "" and name:
            return name, data


def test_job_events_api_pages_filters_downloads_and_follows(dashboard, database):
    job = "ev-" + secrets.token_hex(4)
    database.jobs.insert_one({"_id": job, "projectId": "ev-project", "status": "running", "stage": "generating",
                              "attempts": 1, "createdAt": now()})
    database.job_events.insert_many([
        event_doc(job, 1, "stage", {"stage": "claimed"}),
        event_doc(job, 2, "command", {"agent": "cline", "command": "make <test>", "exitCode": 2}),
        event_doc(job, 3, "file_write", {"agent": "cline", "path": "README.md", "operation": "create", "bytes": 10}),
        event_doc(job, 4, "future_kind", {"x": 1}),   # a later schema's kind: skipped, never guessed
    ])
    auth = {"Authorization": "Bearer " + TOKEN}
    c = Client(dashboard.url)
    r, body = c.get("/api/jobs/%s/events" % job, headers=auth)
    page = json.loads(body)
    assert r.status == 200 and page["schema"] == 1 and page["jobId"] == job
    assert [e["seq"] for e in page["events"]] == [1, 2, 3] and page["hasMore"] is False
    assert page["events"][1]["data"] == {"agent": "cline", "command": "make <test>", "exitCode": 2}
    assert page["events"][1]["at"].endswith("Z") and page["events"][1]["jobId"] == job
    r, body = c.get("/api/jobs/%s/events?after=1&kind=command,file_write&limit=1" % job, headers=auth)
    page = json.loads(body)
    assert [e["kind"] for e in page["events"]] == ["command"] and page["last"] == 2 and page["hasMore"] is True
    assert c.get("/api/jobs/%s/events?kind=nonsense" % job, headers=auth)[0].status == 400
    assert c.get("/api/jobs/%s/events?after=-1" % job, headers=auth)[0].status == 400
    r, body = c.get("/api/jobs/%s/events.jsonl" % job, headers=auth)
    assert r.status == 200 and r.getheader("Content-Type").startswith("application/x-ndjson")
    assert 'filename="job-%s-events.jsonl"' % job in r.getheader("Content-Disposition")
    assert [json.loads(line)["seq"] for line in body.splitlines()] == [1, 2, 3]

    conn = http.client.HTTPConnection(c.host, c.port, timeout=20)
    conn.request("GET", "/api/jobs/%s/events/stream?after=1" % job, headers=auth)
    stream = conn.getresponse()
    assert stream.status == 200 and stream.getheader("Content-Type").startswith("text/event-stream")
    assert read_sse(stream)[1]["seq"] == 2
    assert read_sse(stream)[1]["seq"] == 3
    # A new event, stored with the job's change (as the supervisor's flush does), arrives live.
    database.job_events.insert_one(event_doc(job, 5, "message", {"agent": "cline", "role": "assistant", "text": "hi"}))
    database.jobs.update_one({"_id": job}, {"$set": {"stage": "validating"}})
    name, data = read_sse(stream)
    assert name == "event" and data["seq"] == 5 and data["data"]["text"] == "hi"
    database.job_events.insert_one(event_doc(job, 6, "stage", {"stage": "finished", "status": "done"}))
    database.jobs.update_one({"_id": job}, {"$set": {"status": "done", "stage": "finished"}})
    assert read_sse(stream)[1]["seq"] == 6
    assert read_sse(stream) == ("end", {"status": "done", "stage": "finished", "attempts": 1, "last": 6})
    conn.close()
