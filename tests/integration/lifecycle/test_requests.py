"""Operator requests: desired state, limits, audit rows — no process is touched here."""

from __future__ import annotations

import pytest

from bots import lifecycle
from bots.models import Bot, DesiredState, Status
from deia.models import AuditLog, RuntimeFlag

pytestmark = pytest.mark.django_db


@pytest.fixture
def bot():
    return Bot.objects.create(name="Support", slug="support")


def actions(slug: str = "support") -> list[str]:
    return list(AuditLog.objects.filter(target=slug).order_by("id").values_list("action", flat=True))


def test_a_start_request_sets_the_desired_state_and_audits_the_user(bot, admin_user):
    lifecycle.request_start(bot, user=admin_user, ip="10.0.0.7")
    bot.refresh_from_db()
    assert bot.desired_state == DesiredState.RUNNING
    assert bot.status == Status.STOPPED  # only the worker changes the observed status
    row = AuditLog.objects.get(action="bot.start")
    assert (row.actor, row.user, row.ip, row.target) == ("admin", admin_user, "10.0.0.7", "support")


def test_an_operator_start_takes_a_bot_out_of_error(bot):
    Bot.objects.filter(pk=bot.pk).update(status=Status.ERROR, start_failures=5, desired_state=DesiredState.RUNNING)
    lifecycle.request_start(bot, actor="cli:ops")
    bot.refresh_from_db()
    assert (bot.start_failures, bot.next_start_at) == (0, None)
    assert actions() == ["bot.start"]


def test_a_stop_request_sets_the_desired_state_and_is_audited(bot):
    lifecycle.request_stop(bot, actor="cli:ops")
    bot.refresh_from_db()
    assert bot.desired_state == DesiredState.STOPPED
    assert AuditLog.objects.get(action="bot.stop").actor == "cli:ops"


def test_a_start_beyond_max_bots_is_refused_audited_and_changes_nothing(bot, settings):
    settings.MAX_BOTS = 1
    Bot.objects.create(name="Other", slug="other", desired_state=DesiredState.RUNNING)
    with pytest.raises(lifecycle.StartRefused, match="At most 1 bots"):
        lifecycle.request_start(bot, actor="cli:ops")
    bot.refresh_from_db()
    assert bot.desired_state == DesiredState.STOPPED
    assert actions() == ["bot.start_refused"]
    assert "MAX_BOTS" in AuditLog.objects.get(action="bot.start_refused").details["reason"]


def test_max_bots_zero_refuses_new_starts_and_stops_nothing(bot, settings):
    settings.MAX_BOTS = 0
    running = Bot.objects.create(
        name="Running", slug="running", desired_state=DesiredState.RUNNING, status=Status.RUNNING
    )
    with pytest.raises(lifecycle.StartRefused, match="MAX_BOTS=0"):
        lifecycle.request_start(bot, actor="cli:ops")
    running.refresh_from_db()
    assert (running.desired_state, running.status) == (DesiredState.RUNNING, Status.RUNNING)


def test_the_run_time_freeze_refuses_a_start_and_is_audited(bot):
    RuntimeFlag.objects.create(name=RuntimeFlag.FREEZE_STARTS, enabled=True)
    with pytest.raises(lifecycle.StartRefused, match="frozen"):
        lifecycle.request_start(bot, actor="cli:ops")
    assert actions() == ["bot.start_refused"]
    assert Bot.objects.get(pk=bot.pk).desired_state == DesiredState.STOPPED


def test_deleting_a_bot_without_a_process_deletes_it_at_once_and_audits_it(bot):
    assert lifecycle.request_delete(bot, actor="cli:ops") is True
    assert not Bot.objects.filter(pk=bot.pk).exists()
    assert actions() == ["bot.delete"]


def test_deleting_a_running_bot_stops_it_first(bot):
    Bot.objects.filter(pk=bot.pk).update(status=Status.RUNNING, pid=999999, port=18250, host="h1")
    assert lifecycle.request_delete(bot, actor="cli:ops") is False
    bot.refresh_from_db()
    assert (bot.desired_state, bot.status) == (DesiredState.STOPPED, Status.RUNNING)
