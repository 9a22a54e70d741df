"""The audit log's CSV export in a real browser, served by gunicorn's ASGI workers: the form
posts with its CSRF token, a bad range comes back as a message, a good one downloads."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from deia.audit import audit
from deia.models import AuditLog
from tests.plugins.browser import screenshot, sign_in
from tests.support.procs import wait_for


def set_range(browser, start: str, end: str) -> None:
    # A date input's typing order depends on the locale: set the values directly.
    browser.execute_script(
        "document.getElementById('export-start').value = arguments[0];"
        "document.getElementById('export-end').value = arguments[1];",
        start,
        end,
    )
    browser.find_element(By.CSS_SELECTOR, "#audit-export input[type=submit]").click()


def downloaded(folder: Path) -> Path | None:
    files = [f for f in folder.glob("audit-log_*.csv") if f.stat().st_size]
    return files[0] if files else None


@pytest.mark.django_db(transaction=True)
def test_an_auditor_exports_the_filtered_list_of_a_day_as_csv(browser, gunicorn, django_user_model, tmp_path):
    django_user_model.objects.create_superuser("auditor", password="correct-horse-battery")
    audit("bot.crash", actor="reconcile", target="support")
    audit("bot.start", actor="reconcile", target="sales")
    url = gunicorn(workers=1)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    sign_in(browser, url, "auditor", "correct-horse-battery")

    browser.get(f"{url}/admin/deia/auditlog/?severity__exact=warning")
    WebDriverWait(browser, 15).until(ec.presence_of_element_located((By.ID, "audit-export")))
    screenshot(browser, "audit-log-export")

    set_range(browser, "2026-03-10", "2026-03-01")
    error = WebDriverWait(browser, 15).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".messagelist .error")))
    assert "Nothing exported: the start date (2026-03-10) is after the end date (2026-03-01)" in error.text
    assert "severity__exact=warning" in browser.current_url
    assert not AuditLog.objects.filter(action="audit.export").exists()

    today = datetime.now(UTC).date().isoformat()
    browser.get(f"{url}/admin/deia/auditlog/?severity__exact=warning")
    WebDriverWait(browser, 15).until(ec.presence_of_element_located((By.ID, "audit-export")))
    set_range(browser, today, today)
    path = wait_for(lambda: downloaded(downloads), timeout=20, what="the CSV download")
    rows = wait_for(lambda: list(csv.DictReader(io.StringIO(path.read_text()))), timeout=10, what="the CSV rows")
    assert [(r["action"], r["target"]) for r in rows] == [("bot.crash", "support")]
    export = AuditLog.objects.get(action="audit.export")
    assert (export.actor, export.details["filters"]) == ("auditor", "severity__exact=warning")
