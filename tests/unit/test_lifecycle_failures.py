"""Failure counting on the database: the retry limit and the backoff reset (time moved by hand)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings as django_settings

from bots.lifecycle.transitions import mark_crashed, reset_failures_if_healthy
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
