"""A stopped job's checkpoint (`metadata.checkpoint`, docs/contract.md) on the
job page and in the JSON API, in a real browser: the row's reason, branch and
short commit, as text; no row without one; the row appearing live when a
running job's checkpoint is stored."""

import datetime
import json
import secrets

import pytest
from conftest import now, quote, wait
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

SHA = "3f9c2e1" + "0123456789abcdef" * 2 + "a"
# The document is shared with the web app: a branch holding markup must show as text.
EVIL_BRANCH = 'agent-runner/wip/<img src=x onerror="window.__pwned = 5">'


@pytest.fixture(scope="module")
def stopped(database, seeded):
    """A job cancelled while it generated, its partial work checkpointed."""
    t = now()
    job = "job-checkpoint-" + secrets.token_hex(3)
    database.jobs.insert_one({
        "_id": job, "projectId": seeded["project"], "status": "cancelled", "stage": "finished", "attempts": 1,
        "createdAt": t - datetime.timedelta(minutes=3), "startedAt": t - datetime.timedelta(minutes=3),
        "finishedAt": t - datetime.timedelta(minutes=1), "logs": ["stopping: cancel"],
        "error": {"code": "cancelled", "message": "cancelled; the partial work is on branch %s at %s" % (EVIL_BRANCH, SHA)},
        "metadata": {"generator": "cline", "checkpoint": {"branch": EVIL_BRANCH, "commitSha": SHA, "reason": "cancel"}},
    })
    return job


def test_a_stopped_jobs_page_shows_its_checkpoint(signed_in, dashboard, stopped):
    b = signed_in
    b.get(dashboard.url + "/jobs/" + quote(stopped))
    row = wait(b).until(EC.presence_of_element_located((By.ID, "job-checkpoint")))
    assert b.find_element(By.ID, "job-checkpoint-label").text == "Checkpoint"
    assert row.text == "cancel · branch %s · commit 3f9c2e1" % EVIL_BRANCH
    assert row.find_element(By.CSS_SELECTOR, ".checkpoint-commit").get_attribute("title") == SHA
    assert row.find_elements(By.TAG_NAME, "img") == []
    assert b.execute_script("return window.__pwned") is None


def test_a_job_without_a_checkpoint_has_no_row(signed_in, dashboard, seeded):
    b = signed_in
    b.get(dashboard.url + "/jobs/" + quote(seeded["done"]))
    wait(b).until(EC.presence_of_element_located((By.ID, "job-commit")))
    assert b.find_elements(By.ID, "job-checkpoint") == []
    assert b.find_elements(By.ID, "job-checkpoint-label") == []
    assert "Checkpoint" not in b.find_element(By.CSS_SELECTOR, "section.details").text


def test_the_api_returns_the_checkpoint(signed_in, dashboard, stopped, seeded):
    b = signed_in
    checkpoint = {"branch": EVIL_BRANCH, "commitSha": SHA, "reason": "cancel"}
    b.get(dashboard.url + "/api/jobs/" + quote(stopped))
    assert json.loads(b.find_element(By.TAG_NAME, "body").text)["metadata"]["checkpoint"] == checkpoint
    b.get(dashboard.url + "/api/jobs/" + quote(stopped) + "/logs")
    assert json.loads(b.find_element(By.TAG_NAME, "body").text)["checkpoint"] == checkpoint
    b.get(dashboard.url + "/api/jobs/" + quote(seeded["done"]) + "/logs")
    assert "checkpoint" not in json.loads(b.find_element(By.TAG_NAME, "body").text)


def test_a_checkpoint_stored_while_the_page_is_open_appears_without_reload(signed_in, dashboard, database, seeded):
    b = signed_in
    job = "job-checkpoint-live-" + secrets.token_hex(3)
    t = now()
    database.jobs.insert_one({"_id": job, "projectId": seeded["project"] + "-cp", "status": "running",
                              "stage": "generating", "attempts": 1, "createdAt": t, "startedAt": t,
                              "logs": ["generating with cline"]})
    try:
        b.get(dashboard.url + "/jobs/" + quote(job))
        wait(b).until(EC.text_to_be_present_in_element((By.ID, "live-state"), "Live updates: on"))
        assert b.find_elements(By.ID, "job-checkpoint") == []
        b.execute_script("window.__notReloaded = true")
        # A timeout stopped the attempt: the supervisor stores the checkpoint and puts the job back to pending.
        database.jobs.update_one({"_id": job}, {
            "$set": {"status": "pending", "stage": "claimed",
                     "metadata.checkpoint": {"branch": "agent-runner/wip/" + job, "commitSha": "b" * 40,
                                             "reason": "timeout"}},
            "$push": {"logs": "stopped: timeout; the partial work is on branch agent-runner/wip/" + job}})
        wait(b).until(EC.presence_of_element_located((By.ID, "job-checkpoint")))
        wait(b).until(EC.text_to_be_present_in_element((By.ID, "job-checkpoint"), "timeout"))
        assert b.find_element(By.ID, "job-checkpoint").text == \
            "timeout · branch agent-runner/wip/%s · commit bbbbbbb" % job
        assert b.find_element(By.ID, "job-checkpoint-label").text == "Checkpoint"
        assert b.execute_script("return window.__notReloaded") is True
    finally:
        database.jobs.delete_one({"_id": job})
