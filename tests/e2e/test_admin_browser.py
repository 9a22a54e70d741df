"""The admin console in a real browser: headless Chromium through chromedriver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from bots.models import Bot, Status
from deia.models import AuditLog

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not Path(binary).exists():
            pytest.fail(f"{binary} is missing: make test installs chromium and chromium-driver", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        service=Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "cd.log")), options=options
    )
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.mark.django_db(transaction=True)
def test_an_operator_signs_in_and_sees_the_fleet_and_the_audit_trail(browser, gunicorn, django_user_model, tmp_path):
    django_user_model.objects.create_superuser("oncall", password="correct-horse-battery")
    Bot.objects.create(name="Support bot", slug="support", last_error="model llama9 not found")
    Bot.objects.filter(slug="support").update(status=Status.ERROR)
    url = gunicorn(workers=1)
    browser.get(f"{url}/admin/")
    browser.find_element(By.NAME, "username").send_keys("oncall")
    browser.find_element(By.NAME, "password").send_keys("correct-horse-battery")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, 15).until(ec.title_contains("Operations console"))

    browser.get(f"{url}/admin/bots/bot/")
    table = WebDriverWait(browser, 15).until(ec.presence_of_element_located((By.ID, "result_list")))
    assert "Support bot" in table.text
    assert "Error" in table.text
    assert "model llama9 not found" in table.text
    browser.save_screenshot(str(tmp_path / "bots.png"))

    browser.get(f"{url}/admin/deia/auditlog/")
    audit_table = WebDriverWait(browser, 15).until(ec.presence_of_element_located((By.ID, "result_list")))
    assert "auth.login" in audit_table.text
    # Read-only: no "add" button for the audit log, even for a superuser.
    assert not browser.find_elements(By.CSS_SELECTOR, ".object-tools a.addlink")
    assert AuditLog.objects.filter(action="auth.login", actor="oncall").count() == 1
