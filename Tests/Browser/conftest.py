"""Fixtures for the dashboard's browser and HTTP tests.

The tests start the real `agent-runner-dashboard` (built by `swift build`) on
a free loopback port against the test database that scripts/with-db.sh
provides (MONGODB_URI), seed job documents with pymongo, and drive Debian's
Chromium through chromedriver with Selenium.
"""

import datetime
import os
import pathlib
import secrets
import shutil
import subprocess
import tempfile
import threading
import urllib.parse

import pymongo
import pytest
from bson import ObjectId
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("BUILD_DIR", ROOT / ".build" / "debug"))
SCREENSHOTS = ROOT / ".build" / "screenshots"
TOKEN = "dash-" + secrets.token_hex(16)


def now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def wait(driver, seconds=20):
    """A WebDriverWait polling every 0.2 s."""
    return WebDriverWait(driver, seconds, poll_frequency=0.2)


def event_doc(job, seq, kind, data, at=None):
    """A `job_events` document of attempt 1, schema version 1 (docs/contract.md, Job events)."""
    return {"jobId": job, "seq": seq, "attempt": 1, "v": 1, "kind": kind, "data": data, "at": at or now()}


class Dashboard:
    """A running agent-runner-dashboard and what it printed."""

    def __init__(self, proc, url, log_path):
        self.proc = proc
        self.url = url
        self.log_path = log_path

    def log_text(self):
        return self.log_path.read_text(errors="replace")


def start_dashboard(env_extra, args=("--listen", "127.0.0.1:0"), executable=None, cwd=None):
    """Starts the dashboard; returns (process, url) once it prints its address."""
    exe = executable or str(BUILD / "agent-runner-dashboard")
    env = {k: v for k, v in os.environ.items() if k not in ("DASHBOARD_TOKEN", "MONGO_DB_NAME")}
    env.update(env_extra)
    log = tempfile.NamedTemporaryFile(prefix="dashboard-", suffix=".log", delete=False)
    proc = subprocess.Popen([exe, *args], stdout=subprocess.PIPE, stderr=log, env=env,
                            cwd=cwd or tempfile.gettempdir(), text=True)
    line = [None]

    def read_first():
        line[0] = proc.stdout.readline()

    reader = threading.Thread(target=read_first, daemon=True)
    reader.start()
    reader.join(60)
    text = line[0] or ""
    if not text.startswith("listening on "):
        proc.kill()
        proc.wait()
        raise AssertionError("dashboard did not start: %r\n%s" % (text, pathlib.Path(log.name).read_text()))
    return proc, text.split()[-1].rstrip("/"), pathlib.Path(log.name)


@pytest.fixture(scope="session")
def database():
    uri = os.environ.get("MONGODB_URI")
    assert uri, "MONGODB_URI is not set: run the tests through scripts/with-db.sh"
    client = pymongo.MongoClient(uri)
    name = "dash_" + secrets.token_hex(4)
    yield client[name]
    client.drop_database(name)
    client.close()


@pytest.fixture(scope="session")
def dashboard(database):
    proc, url, log_path = start_dashboard({
        "MONGODB_URI": os.environ["MONGODB_URI"], "MONGO_DB_NAME": database.name,
        "DASHBOARD_TOKEN": TOKEN, "RUNNER_POLL_SECONDS": "1", "LOG_LEVEL": "debug",
    })
    d = Dashboard(proc, url, log_path)
    yield d
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    text = d.log_text()
    assert TOKEN not in text, "the dashboard logged its token"
    log_path.unlink()


@pytest.fixture(scope="session")
def seeded(database):
    """A project with a done, a failed and a running job."""
    t = now()
    project = "proj-" + secrets.token_hex(4)
    database.projects.insert_one({"_id": project, "name": "Shop <demo>", "jobIds": [],
                                  "githubRepoUrl": "https://git.example.test/shop.git", "lastUpdated": t})
    done = ObjectId()
    database.jobs.insert_one({
        "_id": done, "projectId": project, "status": "done", "stage": "finished", "attempts": 1,
        "createdAt": t - datetime.timedelta(minutes=30), "startedAt": t - datetime.timedelta(minutes=29),
        "finishedAt": t - datetime.timedelta(minutes=27), "logs": ["generating", "pushed"],
        "metadata": {"generator": "scaffold", "commitSha": "c0ffee" + "0" * 34, "branch": "main",
                     "repoUrl": "https://git.example.test/shop.git",
                     "timings": {"spawnMs": 12, "generateMs": 840, "publishMs": 95},
                     "agent": {"model": "claude-sonnet-4-5", "provider": "anthropic", "inputTokens": 1200,
                               "outputTokens": 340, "finishReason": "completed"}},
    })
    failed = "job-failed-" + secrets.token_hex(3)
    database.jobs.insert_one({
        "_id": failed, "projectId": project, "status": "failed", "stage": "finished", "attempts": 3,
        "createdAt": t - datetime.timedelta(minutes=20), "startedAt": t - datetime.timedelta(minutes=19),
        "finishedAt": t - datetime.timedelta(minutes=18),
        "error": {"code": "push_rejected", "message": "remote refused the push: non-fast-forward"},
        "errors": [{"code": "network", "message": "connection reset", "attempt": 1, "at": t},
                   {"code": "push_rejected", "message": "remote refused the push: non-fast-forward",
                    "attempt": 3, "at": t}],
        "logs": ["claimed", "pushing", "push failed"],
    })
    running = "job-running-" + secrets.token_hex(3)
    database.jobs.insert_one({
        "_id": running, "projectId": project, "status": "running", "stage": "generating", "attempts": 1,
        "createdAt": t - datetime.timedelta(minutes=2), "startedAt": t - datetime.timedelta(minutes=1),
        "updatedAt": t, "logs": ["claimed by runner-a", "generating with scaffold"],
        "lease": {"owner": "runner-a:4242", "token": "secret-lease-token",
                  "expiresAt": t + datetime.timedelta(seconds=30)},
    })
    database.project_locks.insert_one({"_id": project, "jobId": running, "token": "secret-lease-token",
                                       "expiresAt": t + datetime.timedelta(seconds=30)})
    return {"project": project, "done": str(done), "failed": failed, "running": running}


@pytest.fixture(scope="session")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                              options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def signed_in(browser, dashboard):
    """The browser, signed in (the sign-in page sends a signed-in browser home)."""
    browser.get(dashboard.url + "/signin")
    if browser.find_elements(By.ID, "token"):
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.ID, "signin").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "count-running")))
    return browser


@pytest.fixture(scope="session")
def screenshots():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def quote(s):
    return urllib.parse.quote(s, safe="")
