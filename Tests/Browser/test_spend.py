"""A job's spend in the dashboard, in a real browser: its cost and tokens in
the jobs list, the Spend section and its budget bars on the job page, and
the spend by day and by project."""

import datetime
import json
import secrets

import pytest
from conftest import now, quote, wait
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC


@pytest.fixture(scope="module")
def spent(database):
    """A job stopped by its own budget (metered usage, a checkpoint), in a project of its own."""
    t = now()
    project = "spend-" + secrets.token_hex(4)
    database.projects.insert_one({"_id": project, "name": "Spender", "jobIds": []})
    job = "job-spent-" + secrets.token_hex(3)
    finished = t - datetime.timedelta(minutes=1)
    usage = {"requests": 4, "inputTokens": 2400, "outputTokens": 680, "cacheReadTokens": 1600, "cacheWriteTokens": 128,
             "tokens": 4808, "cost": 0.034, "unpricedRequests": 0, "retries": 1,
             "byModel": {"claude-sonnet-4-5": {"requests": 4, "inputTokens": 2400, "outputTokens": 680, "tokens": 4808,
                                               "cost": 0.034}}}
    database.jobs.insert_one({
        "_id": job, "projectId": project, "status": "failed", "stage": "finished", "attempts": 1,
        "createdAt": t - datetime.timedelta(minutes=5), "startedAt": t - datetime.timedelta(minutes=5),
        "finishedAt": finished, "logs": ["budget: 50% of budget.usd=$0.0500 spent ($0.0260)"],
        "budget": {"usd": 0.05, "requests": 4},
        "error": {"code": "budget_exceeded", "message": "budget exceeded: budget.requests=4 requests spent", "retryable": False},
        "metadata": {"usage": usage, "checkpoint": {"branch": "agent-runner/wip/" + job, "commitSha": "a" * 40,
                                                    "reason": "budget"}},
    })
    return {"project": project, "job": job, "finishedAt": finished}


def test_the_job_page_shows_its_spend_and_budget_bars(signed_in, dashboard, spent):
    b = signed_in
    b.get(dashboard.url + "/jobs/" + quote(spent["job"]))
    section = wait(b).until(EC.presence_of_element_located((By.ID, "job-spend")))
    assert b.find_element(By.ID, "job-cost").text == "$0.0340"
    assert b.find_element(By.ID, "job-tokens").text.startswith("4,808 (in 2400")
    assert "1 provider retries" in b.find_element(By.ID, "job-requests").text
    assert "claude-sonnet-4-5" in section.text
    # One bar per limit of the job's budget: dollars at 68 % (past the 50 % line), requests spent.
    usd = b.find_element(By.ID, "budget-usd")
    assert usd.tag_name == "meter"
    assert float(usd.get_attribute("value")) == pytest.approx(0.034)
    assert float(usd.get_attribute("max")) == pytest.approx(0.05)
    assert usd.get_attribute("data-percent") == "68"
    assert "$0.0340 of $0.0500 (68%)" in b.find_element(By.ID, "job-budget").text
    requests = b.find_element(By.ID, "budget-requests")
    assert requests.get_attribute("data-percent") == "100"
    bar = requests.find_element(By.XPATH, "..")
    assert "budget-spent" in bar.get_attribute("class")
    assert bar.is_displayed() and usd.size["width"] > 100


def test_the_jobs_list_shows_cost_and_tokens(signed_in, dashboard, spent):
    b = signed_in
    b.get(dashboard.url + "/jobs?project=" + quote(spent["project"]))
    row = wait(b).until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-job="%s"]' % spent["job"])))
    headers = [th.text for th in b.find_elements(By.CSS_SELECTOR, "table.jobs thead th")]
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    assert cells[headers.index("Cost")] == "$0.0340"
    assert cells[headers.index("Tokens")] == "4,808"


def test_spend_by_day_and_project(signed_in, dashboard, spent):
    b = signed_in
    b.get(dashboard.url + "/spend?days=2")
    projects = wait(b).until(EC.presence_of_element_located((By.ID, "spend-projects")))
    row = [r for r in projects.find_elements(By.CSS_SELECTOR, "tbody tr") if spent["project"] in r.text]
    assert row and "$0.0340" in row[0].text and "4808" in row[0].text
    # The job's day is its finishedAt's UTC day (not the wall clock's, which may be the next one by now).
    day = spent["finishedAt"].strftime("%Y-%m-%d")
    assert day in b.find_element(By.ID, "spend-days").text
    b.get(dashboard.url + "/api/spend?days=2")
    data = json.loads(b.find_element(By.TAG_NAME, "body").text)
    mine = [p for p in data["byProject"] if p["project"] == spent["project"]]
    assert mine == [{"project": spent["project"], "cost": 0.034, "tokens": 4808, "requests": 4, "jobs": 1,
                     "jobsWithUnpricedCalls": 0}]
    b.get(dashboard.url + "/api/spend?days=365")
    assert "days must be a whole number" in b.find_element(By.TAG_NAME, "body").text
