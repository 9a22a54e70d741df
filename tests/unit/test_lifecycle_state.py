"""Pure decisions of the lifecycle: when a start is due, overdue, or a heartbeat stale."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from bots.lifecycle.state import heartbeat_stale, start_due, start_overdue
from bots.models import Bot, DesiredState, Status


def bot(**fields) -> Bot:
    return Bot(name="b", slug="b", **fields)


def test_a_stopped_bot_desired_running_is_due_for_a_start():
    assert start_due(bot(desired_state=DesiredState.RUNNING, status=Status.STOPPED))
    assert not start_due(bot(desired_state=DesiredState.STOPPED, status=Status.STOPPED))
    assert not start_due(bot(desired_state=DesiredState.RUNNING, status=Status.RUNNING))


def test_a_crashed_bot_waits_for_its_backoff():
    now = timezone.now()
    waiting = bot(desired_state=DesiredState.RUNNING, status=Status.CRASHED, next_start_at=now + timedelta(seconds=4))
    assert not start_due(waiting, now)
    assert start_due(waiting, now + timedelta(seconds=5))


def test_a_bot_in_error_waits_for_an_operator(settings):
    settings.BOT_MAX_START_RETRIES = 5
    stuck = bot(desired_state=DesiredState.RUNNING, status=Status.ERROR, start_failures=5)
    assert not start_due(stuck)
    stuck.start_failures = 0  # what an operator's start does
    assert start_due(stuck)


def test_a_start_is_overdue_after_its_timeout_and_a_grace(settings):
    settings.BOT_START_TIMEOUT = 10
    now = timezone.now()
    assert not start_overdue(bot(started_at=now - timedelta(seconds=12)), now)
    assert start_overdue(bot(started_at=now - timedelta(seconds=16)), now)


def test_a_heartbeat_older_than_the_limit_is_stale(settings):
    settings.BOT_HEARTBEAT_STALE = 30
    now = timezone.now()
    assert not heartbeat_stale(bot(last_heartbeat=now - timedelta(seconds=10)), now)
    assert heartbeat_stale(bot(last_heartbeat=now - timedelta(seconds=31)), now)
    # No heartbeat yet: measured from the start.
    assert not heartbeat_stale(bot(started_at=now - timedelta(seconds=5)), now)
