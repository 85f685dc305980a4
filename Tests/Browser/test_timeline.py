"""The job page's timeline (the job's event stream) and its changes view, in a real browser.

With UPDATE_DOC_SCREENSHOTS=1 the finished job's timeline is also saved as
docs/timeline.png, the README's screenshot.
"""

import datetime
import os
import secrets

import pytest
from conftest import ROOT, event_doc, now, quote, wait
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

EVIL_PATH = "src/<img src=x onerror=\"window.__pwned = 3\">.js"


def events_of_a_run(job, t):
    """What a short Cline run records: stages, model calls, tools, commands, files, egress, the publish."""
    def at(s):
        return t + datetime.timedelta(seconds=s)
    rows = [
        ("stage", {"stage": "claimed"}),
        ("stage", {"stage": "preparing"}),
        ("stage", {"stage": "generating"}),
        ("generator", {"generator": "cline", "step": "started", "detail": "cline"}),
        ("model_request", {"agent": "cline", "model": "claude-sonnet-4-5", "provider": "anthropic", "iteration": 1}),
        ("egress_allowed", {"target": "registry.npmjs.org:443", "detail": "CONNECT"}),
        ("provider_call", {"route": "provider", "model": "claude-sonnet-4-5", "status": 200, "inputTokens": 12000,
                           "outputTokens": 1800, "costUsd": 0.063, "durationMs": 8400, "streamed": True, "retries": 0}),
        ("model_response", {"agent": "cline", "model": "claude-sonnet-4-5", "inputTokens": 12000, "outputTokens": 1800,
                            "cost": 0.063, "durationMs": 8450}),
        ("message", {"agent": "cline", "role": "assistant", "text": "I will scaffold the API and the web app."}),
        ("tool_call", {"agent": "cline", "tool": "editor", "id": "t1", "input": "README.md"}),
        ("file_write", {"agent": "cline", "path": "README.md", "operation": "create", "bytes": 812}),
        ("file_write", {"agent": "cline", "path": EVIL_PATH, "operation": "create", "bytes": 40}),
        ("tool_call", {"agent": "cline", "tool": "run_commands", "id": "t2", "input": "npm test"}),
        ("command", {"agent": "cline", "command": "npm test", "exitCode": 1, "output": "1 failing"}),
        ("egress_denied", {"target": "169.254.169.254:80", "reason": "not_allowed", "detail": "not in JOB_EGRESS_ALLOW"}),
        ("command", {"agent": "cline", "command": "npm test", "exitCode": 0, "output": "12 passing"}),
        ("provider_call", {"route": "provider", "model": "claude-sonnet-4-5", "status": 200, "inputTokens": 15000,
                           "outputTokens": 900, "costUsd": 0.0585, "durationMs": 5100, "streamed": True, "retries": 0}),
        ("message", {"agent": "cline", "role": "result", "text": "Built the API, the web app and their tests."}),
        ("generator", {"generator": "cline", "step": "finished", "files": 3}),
        ("stage", {"stage": "validating"}),
        ("validation", {"finding": "tree", "ok": True, "files": 3, "bytes": 1900}),
        ("stage", {"stage": "committing"}),
        ("publish", {"step": "commit", "commit": "c0ffee" + "1" * 34, "branch": "main", "detail": "3 files"}),
        ("stage", {"stage": "pushing"}),
        ("publish", {"step": "push", "commit": "c0ffee" + "1" * 34, "branch": "main"}),
        ("changes", {"commit": "c0ffee" + "1" * 34, "total": 3, "files": [
            {"path": "README.md", "status": "added", "bytes": 812, "binary": False},
            {"path": EVIL_PATH, "status": "added", "bytes": 40, "binary": False},
            {"path": "web/logo.png", "status": "added", "bytes": 1048, "binary": True}]}),
        ("diff", {"path": "README.md", "bytes": 60, "text": "@@ -0,0 +1,2 @@\n+# Shop\n+The API and the web app.\n"}),
        ("diff", {"path": EVIL_PATH, "bytes": 70, "text": "@@ -0,0 +1 @@\n+document.write('<script>window.__pwned = 4</script>')\n"}),
        ("stage", {"stage": "finished", "status": "done"}),
    ]
    return [event_doc(job, i + 1, k, d, at(i)) for i, (k, d) in enumerate(rows)]


def test_finished_jobs_timeline_filters_costs_and_changes(signed_in, dashboard, database, seeded, screenshots):
    b = signed_in
    job = "job-timeline-" + secrets.token_hex(3)
    t = now() - datetime.timedelta(minutes=5)
    database.jobs.insert_one({"_id": job, "projectId": seeded["project"], "status": "done", "stage": "finished",
                              "attempts": 1, "createdAt": t, "startedAt": t, "finishedAt": t + datetime.timedelta(seconds=40),
                              "logs": ["done"], "metadata": {"generator": "cline", "commitSha": "c0ffee" + "1" * 34}})
    events = events_of_a_run(job, t)
    database.job_events.insert_many(events)
    b.get(dashboard.url + "/jobs/" + quote(job))
    items = wait(b).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#timeline li.ev"))
    assert len(items) == len(events)
    assert [i.get_attribute("data-seq") for i in items] == [str(e["seq"]) for e in events]
    # The running cost is the proxy's metering (the agent's own report is not added twice).
    assert b.find_element(By.ID, "timeline-cost").text == "$0.1215"
    assert b.find_element(By.ID, "timeline-commands").text == "2"
    assert b.find_element(By.ID, "timeline-failed").text == "1"
    assert b.find_element(By.ID, "timeline-files").text == "2"
    commands = b.find_elements(By.CSS_SELECTOR, "#timeline li.kind-command")
    assert [c.find_element(By.CSS_SELECTOR, ".exit").text for c in commands] == ["exit 1", "exit 0"]
    assert "not_allowed" in b.find_element(By.CSS_SELECTOR, "#timeline li.kind-egress_denied").text
    # The agent's path is text, in the timeline and in the changes view.
    assert EVIL_PATH in b.find_element(By.ID, "timeline").text
    changes = b.find_element(By.ID, "changes")
    assert EVIL_PATH in changes.text and "web/logo.png" in changes.text and "binary" in changes.text
    assert "+The API and the web app." in changes.text
    for where in (b.find_element(By.ID, "timeline"), changes):
        assert where.find_elements(By.TAG_NAME, "img") == [] and where.find_elements(By.TAG_NAME, "script") == []
    assert b.execute_script("return window.__pwned") is None
    b.save_screenshot(str(screenshots / "timeline.png"))
    if os.environ.get("UPDATE_DOC_SCREENSHOTS") == "1":
        size = b.get_window_size()
        b.set_window_size(1280, 1500)
        section = b.find_element(By.CSS_SELECTOR, "section.trajectory")
        b.execute_script("arguments[0].scrollIntoView(); var l = document.getElementById('timeline');"
                         "l.scrollTop = l.querySelector('li[data-seq=\"5\"]').offsetTop - l.offsetTop;", section)
        section.screenshot(str(ROOT / "docs" / "timeline.png"))
        b.set_window_size(size["width"], size["height"])
    # Filters by kind: commands hidden, then shown again.
    box = b.find_element(By.CSS_SELECTOR, '#timeline-filters input[data-kinds="command"]')
    box.click()
    assert all(not c.is_displayed() for c in commands)
    assert b.find_element(By.CSS_SELECTOR, "#timeline li.kind-file_write").is_displayed()
    box.click()
    assert all(c.is_displayed() for c in commands)
    # The download link serves the whole stream.
    link = b.find_element(By.PARTIAL_LINK_TEXT, "download")
    assert link.get_attribute("href").endswith("/api/jobs/%s/events.jsonl" % job)


def test_running_jobs_timeline_receives_new_events_live(signed_in, dashboard, database, seeded):
    b = signed_in
    job = "job-timeline-live-" + secrets.token_hex(3)
    t = now()
    database.jobs.insert_one({"_id": job, "projectId": seeded["project"] + "-live", "status": "running",
                              "stage": "generating", "attempts": 1, "createdAt": t, "startedAt": t, "logs": []})
    first = events_of_a_run(job, t)[:5]
    database.job_events.insert_many(first)
    b.get(dashboard.url + "/jobs/" + quote(job))
    wait(b).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#timeline li.ev")) == 5)
    b.execute_script("window.__notReloaded = true")
    # The supervisor stores events, then writes the job's progress: the change wakes the stream.
    database.job_events.insert_many([
        event_doc(job, 6, "command", {"agent": "cline", "command": "ls <b>", "exitCode": 0}),
        event_doc(job, 7, "provider_call", {"route": "provider", "model": "m", "status": 200, "inputTokens": 10,
                                            "outputTokens": 5, "costUsd": 0.25}),
    ])
    database.jobs.update_one({"_id": job}, {"$push": {"logs": "cline command: ls"}})
    wait(b).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#timeline li.ev")) == 7)
    wait(b).until(EC.text_to_be_present_in_element((By.ID, "timeline-commands"), "1"))
    assert b.find_element(By.ID, "timeline-cost").text == "$0.2500"
    last = b.find_elements(By.CSS_SELECTOR, "#timeline li.ev")[5]
    assert "ls <b>" in last.text and last.find_elements(By.TAG_NAME, "b") == []
    assert last.find_element(By.CSS_SELECTOR, ".exit").text == "exit 0"
    assert b.execute_script("return window.__notReloaded") is True
    database.jobs.update_one({"_id": job}, {"$set": {"status": "done", "stage": "finished"}})
