"""A bot's journey in a real browser: headless Chromium against gunicorn, a real Celery bots
worker and the real bot process it starts, which talks to the fake Ollama.

An operator creates a bot, starts it from the list, watches its page turn to Running without
a reload, chats with it and sees the answer arrive in pieces, stops it from its page and
finds its audit rows. A user without bots.operate_bot sees no Start and is refused when
posting the forms anyway; a user who is not staff is refused the admin.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from bots.access import MANAGE_ALL
from bots.botpage import bot_audit_rows
from bots.models import Bot, DesiredState, Status
from deia.models import AuditLog
from tests.plugins.browser import screenshot, sign_in
from tests.support.perms import grant

PASSWORD = "correct-horse-battery"
QUESTION = "tell me a story about bots"


def wait(browser, timeout: float = 30):
    return WebDriverWait(browser, timeout, poll_frequency=0.05)


def shows_status(text: str):
    return lambda driver: driver.find_element(By.ID, "bot-status").text == text


def said(browser, text: str) -> None:
    wait(browser).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "ul.messagelist"), text))


def post_form(browser, action: str, fields: dict[str, str]) -> None:
    """Post a form the page does not offer, with the page's CSRF token, as a crafted form would."""
    browser.execute_script(
        """
        const [action, fields] = arguments;
        const form = document.createElement("form");
        form.method = "post";
        form.action = action;
        fields.csrfmiddlewaretoken = document.querySelector("[name=csrfmiddlewaretoken]").value;
        for (const [name, value] of Object.entries(fields)) {
            const input = document.createElement("input");
            input.type = "hidden";
            input.name = name;
            input.value = value;
            form.appendChild(input);
        }
        document.body.appendChild(form);
        form.submit();
        """,
        action,
        fields,
    )


@pytest.mark.screenshots
@pytest.mark.django_db(transaction=True)
def test_an_operator_creates_starts_chats_with_stops_and_audits_a_bot_and_others_may_not(
    browser, gunicorn, bot_worker, fake_ollama, static_root, django_user_model
):
    django_user_model.objects.create_superuser("oncall", password=PASSWORD)
    bot_worker("host-a")
    url = gunicorn(workers=1, STATIC_ROOT=str(static_root))
    sign_in(browser, url, "oncall", PASSWORD)

    # Create a bot (its slug filled in by the admin's own JavaScript).
    browser.get(f"{url}/admin/bots/bot/add/")
    browser.find_element(By.NAME, "name").send_keys("Journey bot")
    wait(browser, 5).until(lambda d: d.find_element(By.NAME, "slug").get_attribute("value") == "journey-bot")
    Select(browser.find_element(By.NAME, "backend")).select_by_value("ollama")
    browser.find_element(By.NAME, "_save").click()
    said(browser, "was added successfully")
    bot = Bot.objects.get(slug="journey-bot")

    # Start it from the list's action.
    browser.find_element(By.CSS_SELECTOR, f"input.action-select[value='{bot.pk}']").click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("start_bots")
    browser.find_element(By.CSS_SELECTOR, "button[name=index]").click()
    said(browser, "Journey bot: start requested")

    # Its page turns to Running by itself: the marker set on this page load is still there.
    page = f"{url}/admin/bots/bot/{bot.pk}/change/"
    browser.get(page)
    browser.execute_script("window.loadedOnce = true;")
    wait(browser, 60).until(shows_status("Running"))
    assert browser.execute_script("return window.loadedOnce === true;"), "the page was reloaded"
    bot.refresh_from_db()
    assert browser.find_element(By.CSS_SELECTOR, "[data-live=pid]").text == str(bot.pid)
    assert browser.find_element(By.CSS_SELECTOR, "[data-live=address]").text == bot.address

    # A test chat: the answer arrives in pieces, slowly enough to see one before the end.
    # (The window first takes the page's height, so the screenshot mid-answer resizes nothing.)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(browser.get_window_size()["width"], max(600, min(int(height) + 120, 4000)))
    fake_ollama.chunk_delay = 0.4
    browser.find_element(By.ID, "bot-chat-input").send_keys(QUESTION)
    send = browser.find_element(By.ID, "bot-chat-send")
    wait(browser, 10).until(lambda d: send.is_enabled())
    send.click()
    reply = browser.find_element(By.ID, "bot-chat-reply")
    wait(browser).until(lambda d: reply.get_attribute("data-state") == "streaming" and reply.text)
    partial = reply.text
    screenshot(browser, "bot-chat")
    wait(browser).until(lambda d: reply.get_attribute("data-state") == "done")
    final = reply.text
    assert final == f"fake reply to: {QUESTION}"
    assert final.startswith(partial) and len(partial) < len(final), (partial, final)
    timing = browser.find_element(By.ID, "bot-chat-timing").text
    assert re.match(r"first token \d+ ms · total \d+ ms \(the bot: \d+ ms, \d+ tokens\)", timing), timing

    # Stop it from its page, once the browser has asked.
    browser.find_element(By.ID, "bot-stop").click()
    alert = wait(browser, 5).until(ec.alert_is_present())
    assert alert.text == "Stop the bot Journey bot?"
    alert.accept()
    said(browser, "Journey bot: stop requested")
    wait(browser).until(shows_status("Stopped"))

    # Its audit rows: on the audit log, searched for the bot; one row per change.
    browser.get(f"{url}/admin/deia/auditlog/?q=journey-bot")
    listed = wait(browser).until(ec.presence_of_element_located((By.ID, "result_list"))).text
    for action in ("bot.start", "bot.started", "bot.stop", "bot.stopped"):
        assert action in listed, action
    actions = Counter(bot_audit_rows(bot).values_list("action", flat=True))
    assert actions == {"bot.create": 1, "bot.start": 1, "bot.started": 1, "bot.stop": 1, "bot.stopped": 1}

    # Without bots.operate_bot: no Start, and posting the forms anyway is refused and changes nothing.
    looker = django_user_model.objects.create_user("looker", password=PASSWORD, is_staff=True)
    grant(looker, "bots.view_bot", "bots.change_bot", MANAGE_ALL)
    browser.delete_all_cookies()
    sign_in(browser, url, "looker", PASSWORD)
    browser.get(page)
    wait(browser).until(shows_status("Stopped"))
    assert not browser.find_elements(By.ID, "bot-start") and not browser.find_elements(By.ID, "bot-operate")
    post_form(browser, f"/admin/bots/bot/{bot.pk}/operate/start/", {"confirm": "yes"})
    wait(browser).until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "403 Forbidden"))
    browser.get(f"{url}/admin/bots/bot/")
    actions_offered = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "[name=action] option")]
    assert "start_bots" not in actions_offered
    post_form(browser, "/admin/bots/bot/", {"action": "start_bots", "_selected_action": str(bot.pk), "index": "0"})
    wait(browser).until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "403 Forbidden"))
    bot.refresh_from_db()
    assert (bot.desired_state, bot.status) == (DesiredState.STOPPED, Status.STOPPED)
    denied = AuditLog.objects.filter(action="bot.start_denied").values_list("actor", "target")
    assert list(denied) == [("looker", "journey-bot")] * 2
    assert AuditLog.objects.filter(action="bot.start").count() == 1

    # Not staff: the admin's sign-in refuses, and its pages send back to it.
    django_user_model.objects.create_user("outsider", password=PASSWORD, is_staff=False)
    browser.delete_all_cookies()
    browser.get(f"{url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("outsider")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    note = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".errornote")))
    assert "staff account" in note.text
    browser.get(page)
    assert browser.current_url.startswith(f"{url}/admin/login/")
