"""The dashboard in a real browser (headless Chromium via Selenium)."""

import pytest
from conftest import TOKEN, quote, wait
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC


@pytest.fixture(scope="module")
def signed_in(browser, dashboard, seeded):
    """Signs in through the form (after one wrong token); this module's own,
    instead of conftest's, to see the form refuse a wrong token first."""
    browser.get(dashboard.url + "/")
    wait(browser).until(EC.url_contains("/signin"))
    browser.find_element(By.ID, "token").send_keys("not-the-token-at-all")
    browser.find_element(By.ID, "signin").click()
    wait(browser).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "p.error"), "not valid"))
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "signin").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "count-running")))
    return browser


def test_session_cookie_is_http_only_and_strict(signed_in):
    cookie = signed_in.get_cookie("ar_session")
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    # HttpOnly: the page's script cannot read it.
    assert "ar_session" not in signed_in.execute_script("return document.cookie")


def test_queue_shows_done_failed_and_running(signed_in, dashboard, seeded, screenshots):
    b = signed_in
    b.get(dashboard.url + "/")
    assert b.find_element(By.ID, "count-done").text == "1"
    assert b.find_element(By.ID, "count-failed").text == "1"
    assert b.find_element(By.ID, "count-running").text == "1"
    row = b.find_element(By.CSS_SELECTOR, '#running tr[data-job="%s"]' % seeded["running"])
    assert "generating" in row.text and "runner-a:4242" in row.text
    wait(b).until(EC.text_to_be_present_in_element((By.ID, "live-state"), "Live updates: on"))
    b.save_screenshot(str(screenshots / "queue.png"))


def test_queue_counts_follow_the_database(signed_in, dashboard, database, seeded):
    b = signed_in
    b.get(dashboard.url + "/")
    wait(b).until(EC.text_to_be_present_in_element((By.ID, "live-state"), "Live updates: on"))
    b.execute_script("window.__notReloaded = true")
    database.jobs.insert_one({"_id": "job-pending-live", "projectId": seeded["project"], "status": "pending",
                              "logs": [], "createdAt": __import__("conftest").now()})
    try:
        wait(b).until(EC.text_to_be_present_in_element((By.ID, "count-pending"), "1"))
        assert b.execute_script("return window.__notReloaded") is True
    finally:
        database.jobs.delete_one({"_id": "job-pending-live"})


def test_jobs_list_shows_the_failed_jobs_error_code(signed_in, dashboard, seeded):
    b = signed_in
    b.get(dashboard.url + "/jobs")
    rows = b.find_elements(By.CSS_SELECTOR, "table.jobs tbody tr")
    assert {r.get_attribute("data-job") for r in rows} >= {seeded["done"], seeded["failed"], seeded["running"]}
    b.get(dashboard.url + "/jobs?status=failed")
    rows = b.find_elements(By.CSS_SELECTOR, "table.jobs tbody tr")
    assert [r.get_attribute("data-job") for r in rows] == [seeded["failed"]]
    assert "push_rejected" in rows[0].text


def test_failed_job_shows_its_error_and_retry_makes_it_pending(signed_in, dashboard, database, seeded, screenshots):
    b = signed_in
    b.get(dashboard.url + "/jobs?status=failed")
    b.find_element(By.LINK_TEXT, seeded["failed"]).click()
    error = wait(b).until(EC.presence_of_element_located((By.ID, "job-error")))
    assert "push_rejected" in error.text
    assert "remote refused the push: non-fast-forward" in error.text
    history = b.find_element(By.ID, "errors").text
    assert "connection reset" in history and "network" in history
    assert b.find_element(By.ID, "job-status").text == "failed"
    b.save_screenshot(str(screenshots / "job-failed.png"))
    b.find_element(By.ID, "retry").click()
    wait(b).until(EC.presence_of_element_located((By.CSS_SELECTOR, "p.notice")))
    doc = database.jobs.find_one({"_id": seeded["failed"]})
    assert doc["status"] == "pending"
    assert doc["attempts"] == 0
    assert "error" not in doc
    assert b.find_element(By.ID, "job-status").text == "pending"


def test_running_job_log_streams_without_reload_and_shows_html_as_text(signed_in, dashboard, database, seeded,
                                                                         screenshots):
    b = signed_in
    job = seeded["running"]
    b.get(dashboard.url + "/jobs/" + quote(job))
    wait(b).until(EC.text_to_be_present_in_element((By.ID, "live-state"), "Live updates: on"))
    b.execute_script("window.__notReloaded = true")
    evil = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">"
    database.jobs.update_one({"_id": job}, {"$push": {"logs": {"$each": ["validating the tree", evil]}},
                                            "$set": {"stage": "validating"}})
    log = b.find_element(By.ID, "log")
    wait(b).until(EC.text_to_be_present_in_element((By.ID, "log"), "<script>window.__pwned = 1</script>"))
    wait(b).until(EC.text_to_be_present_in_element((By.ID, "job-stage"), "validating"))
    assert b.execute_script("return window.__notReloaded") is True
    lines = [e.text for e in log.find_elements(By.CSS_SELECTOR, "span.line")]
    assert lines[-2:] == ["validating the tree", evil]
    assert lines.count("generating with scaffold") == 1
    assert b.execute_script("return window.__pwned") is None
    assert log.find_elements(By.TAG_NAME, "script") == [] and log.find_elements(By.TAG_NAME, "img") == []
    current = b.find_element(By.CSS_SELECTOR, "#stages li.current")
    assert current.get_attribute("data-stage") == "validating"
    database.jobs.update_one({"_id": job}, {"$push": {"logs": "committing 12 files"}})
    wait(b).until(EC.text_to_be_present_in_element((By.ID, "log"), "committing 12 files"))
    b.save_screenshot(str(screenshots / "job-running.png"))

    # The same line rendered by the server after a reload: still text.
    b.refresh()
    log = wait(b).until(EC.presence_of_element_located((By.ID, "log")))
    assert evil in log.text
    assert log.find_elements(By.TAG_NAME, "script") == [] and log.find_elements(By.TAG_NAME, "img") == []
    assert b.execute_script("return window.__pwned") is None


def test_done_job_shows_commit_remote_generator_and_timings(signed_in, dashboard, seeded):
    b = signed_in
    b.get(dashboard.url + "/jobs/" + seeded["done"])
    assert b.find_element(By.ID, "job-status").text == "done"
    assert b.find_element(By.ID, "job-commit").text.startswith("c0ffee")
    remote = b.find_element(By.CSS_SELECTOR, "#job-remote a")
    assert remote.get_attribute("href") == "https://git.example.test/shop.git"
    assert "scaffold" in b.find_element(By.CSS_SELECTOR, "section.details").text
    assert "claude-sonnet-4-5" in b.find_element(By.ID, "job-agent").text
    timings = b.find_element(By.CSS_SELECTOR, "table.timings").text
    assert "generateMs 840" in timings and "spawnMs 12" in timings
    assert b.find_elements(By.ID, "retry") == [] and b.find_elements(By.ID, "cancel") == []


def test_project_and_runners_pages(signed_in, dashboard, seeded):
    b = signed_in
    b.get(dashboard.url + "/projects/" + quote(seeded["project"]))
    assert b.find_element(By.TAG_NAME, "h1").text == "Project Shop <demo>"
    assert seeded["running"] in b.find_element(By.ID, "lock-holder").text
    assert "c0ffee" in b.find_element(By.ID, "last-commit").text
    b.get(dashboard.url + "/runners")
    table = b.find_element(By.ID, "runners").text
    assert "runner-a:4242" in table and seeded["running"] in table


def test_sign_out_ends_the_session(signed_in, dashboard):
    b = signed_in
    b.get(dashboard.url + "/")
    b.find_element(By.CSS_SELECTOR, "form.signout button").click()
    wait(b).until(EC.url_contains("/signin"))
    b.get(dashboard.url + "/jobs")
    assert "/signin" in b.current_url
