"""The admin console in a real browser: headless Chromium through chromedriver."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from bots.models import Bot, Status
from deia.models import AuditLog


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
