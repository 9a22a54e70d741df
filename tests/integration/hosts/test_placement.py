"""Placement and failover decisions on the database alone (no processes): limits, labels, leases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from bots.lifecycle import hosts
from bots.lifecycle.placement import Fleet, place
from bots.lifecycle.reconcile import place_starts
from bots.lifecycle.state import fleet_lock
from bots.models import Bot, DesiredState, Host, HostState, Status, db_now
from deia.models import AuditLog, MetricValue

pytestmark = pytest.mark.django_db


def make_host(name: str, capacity: int = 10, seen_ago: float = 0, **fields) -> Host:
    return Host.objects.create(name=name, capacity=capacity, last_seen=db_now() - timedelta(seconds=seen_ago), **fields)


def make_bots(count: int, prefix: str = "bot", **fields) -> list[Bot]:
    return [
        Bot.objects.create(name=f"{prefix} {i}", slug=f"{prefix}-{i}", desired_state=DesiredState.RUNNING, **fields)
        for i in range(count)
    ]


def placed_on() -> dict[str, str]:
    return dict(Bot.objects.values_list("slug", "host"))


def test_starts_go_to_the_least_loaded_host_and_never_past_its_capacity(settings):
    make_host("host-a", capacity=2)
    make_host("host-b", capacity=1)
    bots = make_bots(4)
    place_starts([b.pk for b in bots])
    on = placed_on()
    assert sorted(on.values()) == ["", "host-a", "host-a", "host-b"]
    waiting = Bot.objects.get(host="")
    assert "HOST_MAX_BOTS" in waiting.last_error
    # Each placement bumped the generation.
    assert set(Bot.objects.exclude(host="").values_list("generation", flat=True)) == {1}
    assert Bot.objects.per_host() == {"host-a": 2, "host-b": 1}


def test_placement_never_places_more_than_max_bots(settings):
    settings.MAX_BOTS = 2
    make_host("host-a", capacity=10)
    make_host("host-b", capacity=10)
    bots = make_bots(3)
    place_starts([b.pk for b in bots])
    assert Bot.objects.exclude(host="").count() == 2
    assert "MAX_BOTS=2" in Bot.objects.get(host="").last_error


def test_a_bot_with_a_required_label_goes_only_to_hosts_with_that_label():
    make_host("plain", capacity=10)
    make_host("gpu-host", capacity=10, labels="gpu, big")
    make_host("other-gpu", capacity=0, labels="gpu")  # full
    (pinned,) = make_bots(1, prefix="pinned", required_label="gpu")
    (nowhere,) = make_bots(1, prefix="nowhere", required_label="tpu")
    place_starts([pinned.pk, nowhere.pk])
    assert placed_on() == {"pinned-0": "gpu-host", "nowhere-0": ""}
    assert "label 'tpu'" in Bot.objects.get(slug="nowhere-0").last_error


def test_draining_and_lost_hosts_take_no_placement():
    make_host("draining", draining=True, draining_since=timezone.now())
    make_host("silent", seen_ago=120)
    make_host("alive", capacity=1)
    bots = make_bots(2)
    place_starts([b.pk for b in bots])
    assert sorted(placed_on().values()) == ["", "alive"]


def test_without_any_host_row_the_claiming_worker_starts_the_bot_itself():
    (bot,) = make_bots(1)
    place_starts([bot.pk])
    bot.refresh_from_db()
    assert bot.host == "" and bot.generation == 0  # legacy: no placement, any worker claims it
    assert Fleet.read().legacy


def test_a_host_past_its_lease_is_lost_once_and_its_bots_are_rescheduled_elsewhere(settings):
    settings.HOST_LEASE_SECONDS = 6
    make_host("dead", seen_ago=30)
    make_host("live")
    bots = make_bots(2)
    port = 19440
    for i, bot in enumerate(bots):
        Bot.objects.filter(pk=bot.pk).update(
            status=Status.RUNNING, host="dead", pid=4_000_000 + i, port=port + i, generation=3
        )
    for _ in range(2):  # a second pass audits nothing again
        with transaction.atomic():
            fleet_lock()
            assert hosts.mark_lost_hosts(db_now()) == ["dead"]
    assert AuditLog.objects.filter(action="host.lost", target="dead").count() == 1
    assert set(Bot.objects.values_list("status", flat=True)) == {Status.LOST}
    assert Host.objects.get(name="dead").state_at(db_now(), 6) == HostState.LOST

    # The backoff of a crash: 1 failure, then placed on the live host with a new generation.
    Bot.objects.update(next_start_at=None)
    place_starts([b.pk for b in bots])
    for bot in Bot.objects.all():
        assert (bot.host, bot.status, bot.generation, bot.start_failures) == ("live", Status.LOST, 4, 1)
        (row,) = AuditLog.objects.filter(action="bot.rescheduled", target=bot.slug)
        assert {k: row.details[k] for k in ("from", "to", "reason")} == {
            "from": "dead",
            "to": "live",
            "reason": "host_lost",
        }
        assert row.details["generation"] == 4
    counted = MetricValue.objects.get(name="deia_bot_reschedules_total", labels="reason=host_lost")
    assert counted.value == 2


def test_a_lost_bot_desired_stopped_settles_to_stopped(settings):
    from bots.lifecycle.stop import settle_stopped

    make_host("dead", seen_ago=300)
    (bot,) = make_bots(1)
    Bot.objects.filter(pk=bot.pk).update(status=Status.RUNNING, host="dead", pid=4_000_100, port=19441)
    with transaction.atomic():
        fleet_lock()
        hosts.mark_lost_hosts(db_now())
    Bot.objects.filter(pk=bot.pk).update(desired_state=DesiredState.STOPPED)
    settle_stopped(bot.pk)
    bot.refresh_from_db()
    assert (bot.status, bot.host, bot.pid, bot.port) == (Status.STOPPED, "", None, None)


def test_placing_the_same_bot_twice_keeps_one_placement():
    make_host("host-a")
    make_host("host-b")
    (bot,) = make_bots(1)
    place_starts([bot.pk])
    first = Bot.objects.get(pk=bot.pk)
    place_starts([bot.pk])  # already placed on an alive host: it stays
    again = Bot.objects.get(pk=bot.pk)
    assert (again.host, again.generation) == (first.host, first.generation)
    fleet = Fleet.read()
    assert isinstance(place(again, fleet), Host)  # an explicit re-placement moves it to the other
