"""The dependency probes against the real services: what they find, and that they never raise."""

from __future__ import annotations

import time

import pytest
from django.db import connections

from deia.celery import app
from deia.probes.services import probe_broker, probe_cache, probe_database, probe_disk, probe_workers
from tests.support.procs import free_port

pytestmark = pytest.mark.django_db


def test_the_database_probe_goes_through_the_pool_or_a_connection_of_its_own():
    assert probe_database(2.0).ok
    result = probe_database(2.0, own_connection=True)
    assert result.ok and result.error is None and result.latency_s > 0


def test_the_database_probe_on_its_own_connection_says_why_it_failed(monkeypatch):
    monkeypatch.setitem(connections["default"].settings_dict, "PORT", str(free_port()))

    result = probe_database(2.0, own_connection=True)

    assert not result.ok and "Connection refused" in str(result.error)
    assert result.detail.startswith("OperationalError: ")


def test_the_cache_probe_round_trips_a_value_and_reads_the_redis_memory_facts():
    assert probe_cache().facts == {"redis": True}

    facts = probe_cache(memory=True).facts

    assert facts["used_memory"] > 0 and facts["maxmemory"] >= 0 and facts["maxmemory_policy"]


def test_the_broker_probe_names_the_transport_and_fails_on_a_closed_port(monkeypatch):
    assert probe_broker(2.0).facts == {"transport": "redis"}
    monkeypatch.setattr(app.conf, "broker_url", f"redis://127.0.0.1:{free_port()}/0")

    result = probe_broker(0.5)

    assert not result.ok and result.detail.startswith("ConnectionError: ")


def test_the_workers_probe_is_bounded_and_says_when_it_cannot_ping(monkeypatch):
    started = time.monotonic()
    result = probe_workers(0.3)  # no worker runs for this test's broker
    assert not result.ok and result.detail == "no worker answered a ping" and result.facts["pingable"]
    assert time.monotonic() - started < 2.0
    monkeypatch.setattr(app.conf, "broker_url", "filesystem://")
    assert probe_workers(0.3).facts == {"workers": [], "pingable": False}


def test_the_disk_probe_measures_the_file_system_a_path_would_live_on(tmp_path):
    result = probe_disk(tmp_path / "not" / "created")

    assert result.ok and result.facts["path"] == str(tmp_path / "not" / "created")
    assert 0 < result.facts["free_bytes"] <= result.facts["total_bytes"]
