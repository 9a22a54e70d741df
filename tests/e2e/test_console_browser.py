"""The capacity page and a weekly report in headless Chromium, served by gunicorn; screenshots of both."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from ops.console.reports import make_report
from ops.models import Report
from tests.plugins.browser import screenshot, sign_in
from tests.plugins.console import WEEK


@pytest.mark.screenshots
@pytest.mark.django_db(transaction=True)
def test_an_operator_reads_the_capacity_page_and_a_weekly_report(
    browser, gunicorn, django_user_model, known_week, static_root
):
    django_user_model.objects.create_superuser("oncall", password="correct-horse-battery")
    report, _ = make_report("weekly", WEEK)
    # The admin's own CSS, as an installation serves it, so the screenshots show the real pages.
    url = gunicorn(workers=1, STATIC_ROOT=str(static_root))
    sign_in(browser, url, "oncall", "correct-horse-battery")

    browser.get(f"{url}/admin/ops/maintenancerun/operations/")
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "ops-planning")))
    browser.find_element(By.LINK_TEXT, "Capacity").click()
    table = WebDriverWait(browser, 15).until(ec.presence_of_element_located((By.ID, "cap-triggers")))
    rows = {row.get_attribute("id"): row.text for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")}
    assert set(rows) == {f"cap-trigger-{k}" for k in ("cpu", "memory", "db_connections", "api_p95", "messages")}
    assert "no data" in rows["cap-trigger-api_p95"]  # said in words, not a blank
    assert browser.find_element(By.ID, "cap-days-until-full").text
    screenshot(browser, "capacity")

    browser.get(f"{url}/admin/ops/report/")
    browser.find_element(By.LINK_TEXT, str(report)).click()
    body = WebDriverWait(browser, 15).until(ec.presence_of_element_located((By.ID, "report-body")))
    assert "2 crashes, 1 automatic restarts, 1 start errors." in body.text
    assert len(body.find_elements(By.TAG_NAME, "table")) >= 5
    link = browser.find_element(By.ID, "report-download")
    assert link.get_attribute("href").endswith(f"/admin/ops/report/{report.pk}/download/")
    screenshot(browser, "report")
    assert Report.objects.count() == 1
