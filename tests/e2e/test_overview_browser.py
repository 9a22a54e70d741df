"""The System Overview in a real browser: sign in, see the figures graded and the charts."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from bots.models import Bot, Status
from ops.console import samples
from tests.plugins.browser import screenshot, sign_in


def seed_history() -> None:
    """An hour of traffic and messages, a day of bots, a month of database size."""
    rng = random.Random(11)
    minute = samples.minute_of(timezone.now())
    rows = []
    for i in range(1, 61):
        at = minute - timedelta(minutes=i)
        requests = 600 + rng.randint(-150, 150)
        rows += [
            (at, 60, samples.REQUESTS, "", requests),
            (at, 60, samples.ERRORS, "", rng.choice((0, 0, 0, 1))),
            (at, 60, samples.LATENCY, "0.05", requests * 0.8),
            (at, 60, samples.LATENCY, "0.1", requests * 0.17),
            (at, 60, samples.LATENCY, "0.3", requests * 0.03),
            (at, 60, samples.HEALTH_MINUTES, "", 1),
            (at, 60, samples.HEALTH_OK, "", 1),
            (at, 60, samples.CACHE_HITS, "", 90),
            (at, 60, samples.CACHE_MISSES, "", 10),
            (at, 60, samples.MESSAGES, "", 20 + rng.randint(0, 20)),
            (at, 60, samples.MESSAGE_LATENCY, "0.3", 25),
            (at, 60, samples.MESSAGE_LATENCY, "0.75", 3),
            (at, 60, samples.FIRST_TOKEN, "0.1", 28),
        ]
    for i in range(0, 24 * 60, 15):
        at = minute - timedelta(minutes=i)
        rows += [(at, 60, samples.BOTS, "running", 2 + (i // 240) % 3), (at, 60, samples.BOTS, "stopped", 3)]
    for hour in range(30 * 24, 0, -6):
        at = minute.replace(minute=0) - timedelta(hours=hour)
        rows.append((at, 3600, samples.DATABASE_BYTES, "", 400e6 + (30 * 24 - hour) * 1e5))
    samples.upsert(rows, add=False)


@pytest.mark.screenshots
@pytest.mark.django_db(transaction=True)
def test_an_operator_signs_in_and_sees_the_overview_at_a_glance(browser, gunicorn, django_user_model, static_root):
    django_user_model.objects.create_superuser("oncall", password="correct-horse-battery")
    for name, status in (("Support", Status.RUNNING), ("Sales", Status.RUNNING), ("Billing", Status.STOPPED)):
        Bot.objects.create(name=name, slug=name.lower())
        Bot.objects.filter(slug=name.lower()).update(status=status)
    seed_history()
    # The admin's stylesheets, so that the screenshot shows the page as people see it.
    url = gunicorn(workers=1, STATIC_ROOT=str(static_root))
    sign_in(browser, url, "oncall", "correct-horse-battery")
    browser.get(f"{url}/admin/")
    tiles = WebDriverWait(browser, 15).until(ec.presence_of_element_located((By.ID, "console-tiles")))
    assert browser.title.startswith("System Overview")
    availability = browser.find_element(By.ID, "tile-availability_24 h")
    assert "100.00 %" in availability.text and "Good" in availability.text
    assert "2 / 10" in browser.find_element(By.ID, "tile-bots_running").text
    p95 = browser.find_element(By.ID, "tile-api_p95_seconds_1 h")
    assert " ms" in p95.text and "target ≤ 200 ms" in p95.text
    assert "Availability (30 days)" in tiles.text and "Open diagnose problems" in tiles.text
    charts = browser.find_elements(By.CSS_SELECTOR, "#console-charts svg.deia-chart")
    assert len(charts) == 6
    assert all(chart.find_elements(By.TAG_NAME, "polyline") for chart in charts)
    screenshot(browser, "overview")
    # The admin's dark theme: the levels keep their colours and their words.
    browser.execute_script("localStorage.setItem('theme', 'dark')")
    browser.get(f"{url}/admin/")
    tile = WebDriverWait(browser, 15).until(ec.presence_of_element_located((By.ID, "tile-availability_24 h")))
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("data-theme") == "dark"
    badge = tile.find_element(By.CLASS_NAME, "console-level")
    assert badge.text == "Good" and badge.value_of_css_property("color") == "rgba(255, 255, 255, 1)"
    screenshot(browser, "overview-dark")
