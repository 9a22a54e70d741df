"""Failure counting on the database: the retry limit and the backoff reset (time moved by hand)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings as django_settings

from bots.lifecycle.machine import Outcome
from bots.lifecycle.state import start_due
from bots.lifecycle.stop import stop_bot
from bots.lifecycle.transitions import StartReason, _claim_start, mark_crashed, reset_failures_if_healthy
from bots.models import Bot, DesiredState, Status
from deia.models import AuditLog

pytestmark = pytest.mark.django_db

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
GONE_PID = 4_194_000  # no runner has it: mark_crashed only kills processes tagged as this bot's runner


@pytest.fixture
def lifecycle_settings(settings):
    settings.BOT_BACKOFF_BASE = 1.0
    settings.BOT_BACKOFF_CAP = 300.0
    settings.BOT_BACKOFF_RESET = 600.0
    settings.BOT_MAX_START_RETRIES = 5
    return settings


def running_bot(start_failures: int) -> Bot:
    bot = Bot.objects.create(name="Flaky", slug="flaky", desired_state=DesiredState.RUNNING)
    Bot.objects.filter(pk=bot.pk).update(
        status=Status.RUNNING,
        pid=GONE_PID,
        host=django_settings.HOSTNAME,
        port=19599,
        started_at=START,
        last_heartbeat=START,
        start_failures=start_failures,
    )
    bot.refresh_from_db()
    return bot


def test_a_crash_that_reaches_the_retry_limit_is_one_crash_row_saying_the_bot_went_to_error(
    lifecycle_settings, time_machine
):
    time_machine.move_to(START + timedelta(seconds=30), tick=False)
    bot = running_bot(start_failures=4)
    assert mark_crashed(bot.pk, GONE_PID, f"process {GONE_PID} is gone") == "crashed"
    bot.refresh_from_db()
    assert (bot.status, bot.start_failures, bot.next_start_at, bot.pid) == (Status.ERROR, 5, None, None)
    rows = list(AuditLog.objects.filter(target=bot.slug))
    assert [row.action for row in rows] == ["bot.crash"]
    assert rows[0].details["status"] == "error" and rows[0].details["gave_up_after"] == 5
    assert rows[0].details["retry_in"] is None


def test_failures_in_a_row_are_forgotten_after_ten_healthy_minutes_so_the_backoff_starts_again(
    lifecycle_settings, time_machine
):
    time_machine.move_to(START, tick=False)
    bot = running_bot(start_failures=3)

    time_machine.move_to(START + timedelta(seconds=599.9), tick=False)
    reset_failures_if_healthy(bot)
    bot.refresh_from_db()
    assert bot.start_failures == 3  # not yet ten minutes of health

    time_machine.move_to(START + timedelta(seconds=600), tick=False)
    reset_failures_if_healthy(bot)
    bot.refresh_from_db()
    assert bot.start_failures == 0

    # The next crash waits the base delay again (1 s), not the 8 s a fourth failure would.
    time_machine.move_to(START + timedelta(seconds=700), tick=False)
    mark_crashed(bot.pk, GONE_PID, f"process {GONE_PID} is gone")
    bot.refresh_from_db()
    assert (bot.status, bot.start_failures) == (Status.CRASHED, 1)
    assert bot.next_start_at == START + timedelta(seconds=701)
    assert AuditLog.objects.get(action="bot.crash", target=bot.slug).details["retry_in"] == 1.0


def test_a_restarts_stop_holds_the_bot_from_reconcile_until_the_restart_starts_it_as_a_restart(
    lifecycle_settings, time_machine
):
    # Between a restart's stop and its own start, a reconcile pass used to start the bot as
    # a plain start (audited bot.started, not bot.restarted).
    time_machine.move_to(START + timedelta(seconds=30), tick=False)
    bot = running_bot(start_failures=0)
    assert stop_bot(bot.pk, expected_pid=GONE_PID, hold=30) == Outcome.STOPPED
    bot.refresh_from_db()
    assert (bot.status, bot.desired_state) == (Status.STOPPED, DesiredState.RUNNING)
    assert not start_due(bot), "a reconcile pass would start it now"
    assert _claim_start(bot.pk, None).outcome == Outcome.NOT_DUE
    claim = _claim_start(bot.pk, StartReason.RESTART)
    assert (claim.outcome, claim.reason) == (None, StartReason.RESTART)
    assert Bot.objects.get(pk=bot.pk).status == Status.STARTING


def test_a_concurrent_stop_of_the_same_process_keeps_the_restarts_hold(lifecycle_settings, time_machine):
    # The restart's stop has moved the bot to STOPPING with its hold and waits for the process;
    # reconcile's own stop of that process ends first. The hold must survive it.
    time_machine.move_to(START + timedelta(seconds=30), tick=False)
    bot = running_bot(start_failures=0)
    held_until = START + timedelta(seconds=60)
    Bot.objects.filter(pk=bot.pk).update(status=Status.STOPPING, next_start_at=held_until)
    assert stop_bot(bot.pk) == Outcome.STOPPED
    bot.refresh_from_db()
    assert (bot.status, bot.next_start_at) == (Status.STOPPED, held_until)
    assert not start_due(bot)


def test_a_plain_stop_voids_a_pending_start_time(lifecycle_settings, time_machine):
    time_machine.move_to(START + timedelta(seconds=30), tick=False)
    bot = running_bot(start_failures=0)
    Bot.objects.filter(pk=bot.pk).update(next_start_at=START + timedelta(seconds=60))
    assert stop_bot(bot.pk) == Outcome.STOPPED
    assert Bot.objects.get(pk=bot.pk).next_start_at is None


def test_a_restart_that_must_wait_for_room_lifts_its_hold_for_reconcile(lifecycle_settings, time_machine):
    time_machine.move_to(START + timedelta(seconds=30), tick=False)
    bot = running_bot(start_failures=0)
    stop_bot(bot.pk, expected_pid=GONE_PID, hold=30)
    lifecycle_settings.MAX_BOTS = 0
    assert _claim_start(bot.pk, StartReason.RESTART).outcome == Outcome.REFUSED
    bot.refresh_from_db()
    assert bot.next_start_at is None and start_due(bot)


def test_a_held_bot_whose_restart_never_came_is_started_by_reconcile_after_the_hold(lifecycle_settings, time_machine):
    time_machine.move_to(START + timedelta(seconds=30), tick=False)
    bot = running_bot(start_failures=0)
    stop_bot(bot.pk, expected_pid=GONE_PID, hold=30)
    bot.refresh_from_db()
    time_machine.move_to(START + timedelta(seconds=59), tick=False)
    assert not start_due(bot)
    time_machine.move_to(START + timedelta(seconds=60), tick=False)
    assert start_due(bot)
