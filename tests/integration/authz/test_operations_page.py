"""The Operations page's diagnose results: at most DIAGNOSE_CACHE_SECONDS old, one run for many loads."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from ops.diagnose import CACHE_KEY, cached_diagnose
from tests.unit.test_config import run_manage

pytestmark = pytest.mark.django_db
PAGE = reverse("admin:ops_operations")


@pytest.fixture(autouse=True)
def fresh_cache(settings):
    settings.DIAGNOSE_TIMEOUT = 1
    settings.DIAGNOSE_CACHE_SECONDS = 15
    cache.delete(CACHE_KEY)
    yield
    cache.delete(CACHE_KEY)


def test_the_page_says_how_old_its_results_are(admin_client):
    text = admin_client.get(PAGE).content.decode()
    assert "Checked 0 s ago" in text
    assert "reused for up to 15 s (DIAGNOSE_CACHE_SECONDS)" in text


def test_page_loads_within_the_cache_time_share_one_run_and_a_later_load_runs_again(admin_client):
    first = admin_client.get(PAGE).context["checked_at"]
    with time_machine.travel(timezone.now() + timedelta(seconds=10), tick=False):
        again = admin_client.get(PAGE)
        assert again.context["checked_at"] == first
        assert again.context["checked_seconds_ago"] == 10
    with time_machine.travel(timezone.now() + timedelta(seconds=16), tick=False):
        assert admin_client.get(PAGE).context["checked_at"] > first


def test_concurrent_callers_run_the_checks_once():
    start = threading.Barrier(4)
    results = []

    def load() -> None:
        start.wait()
        try:
            results.append(cached_diagnose().at)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 4 and len(set(results)) == 1


def test_with_no_cache_time_every_call_runs_the_checks(settings):
    settings.DIAGNOSE_CACHE_SECONDS = 0
    assert cached_diagnose().at < cached_diagnose().at
    assert cache.get(CACHE_KEY) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("soon", "DIAGNOSE_CACHE_SECONDS: expected a whole number"), ("-1", "DIAGNOSE_CACHE_SECONDS: must be at least 0")],
)
def test_a_bad_cache_time_stops_start_up_with_one_line(value, expected):
    result = run_manage({"DIAGNOSE_CACHE_SECONDS": value})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert expected in result.stderr
