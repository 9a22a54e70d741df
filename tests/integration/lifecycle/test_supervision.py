"""The control loop with a real worker: crashes, backoff, error, lost workers, many bots."""

from __future__ import annotations

import itertools
import os
import signal

from bots import lifecycle
from bots.lifecycle.process import pid_alive
from bots.models import Bot, Status
from deia.models import AuditLog, MetricValue
from tests.support.procs import wait_for


def status_of(bot: Bot) -> str:
    bot.refresh_from_db()
    return bot.status


def audit_rows(bot: Bot, action: str) -> list[AuditLog]:
    return list(AuditLog.objects.filter(target=bot.slug, action=action).order_by("created_at", "id"))


def test_a_runner_killed_with_sigkill_is_detected_audited_and_restarted(bot_worker, reconcile_ticker):
    bot_worker("host-a")
    reconcile_ticker(0.5)
    bot = Bot.objects.create(name="Crashy", slug="crashy")
    lifecycle.request_start(bot, actor="test")
    wait_for(lambda: status_of(bot) == Status.RUNNING, timeout=30, what="bot running")
    first_pid = bot.pid

    os.kill(first_pid, signal.SIGKILL)
    wait_for(lambda: status_of(bot) == Status.RUNNING and bot.pid != first_pid, timeout=30, what="bot restarted")
    crash = audit_rows(bot, "bot.crash")
    assert len(crash) == 1 and crash[0].details["pid"] == first_pid
    assert len(audit_rows(bot, "bot.restarted")) == 1
    assert bot.restart_count == 1
    assert pid_alive(bot.pid) and not pid_alive(first_pid)
    assert MetricValue.objects.get(name="deia_bot_crashes_total").value == 1
    assert MetricValue.objects.get(name="deia_bot_restarts_total").value == 1


def test_a_runner_that_exits_at_once_backs_off_and_ends_in_error(bot_worker, reconcile_ticker, fake_ollama):
    bot_worker("host-a", BOT_MAX_START_RETRIES="4", BOT_BACKOFF_BASE="0.3")
    reconcile_ticker(0.2)
    bot = Bot.objects.create(name="No model", slug="no-model", model_name="missing-model")
    lifecycle.request_start(bot, actor="test")
    wait_for(lambda: status_of(bot) == Status.ERROR, timeout=60, what="bot in error")

    errors = audit_rows(bot, "bot.start_error")
    assert len(errors) == 4
    assert all(e.details["exit_code"] == 3 for e in errors)  # the runner's "model missing" code
    assert "missing-model" in bot.last_error
    # Each failure doubles the wait (0.3, 0.6, 1.2 s); the last one sends the bot to error.
    assert [e.details["retry_in"] for e in errors] == [0.3, 0.6, 1.2, None]
    gaps = [(b.created_at - a.created_at).total_seconds() for a, b in itertools.pairwise(errors)]
    assert all(gap >= e.details["retry_in"] for gap, e in zip(gaps, errors[:-1], strict=True)), gaps
    # The failure that gives up is one row: the start error itself says the bot went to error.
    assert [e.details.get("gave_up_after") for e in errors] == [None, None, None, 4]
    assert errors[-1].details["status"] == "error"
    assert AuditLog.objects.filter(target=bot.slug).exclude(action__in=["bot.start", "bot.start_error"]).count() == 0
    assert (bot.pid, bot.port, bot.start_failures) == (None, None, 4)
    assert not runner_pids_of_test(bot)
    assert MetricValue.objects.get(name="deia_bot_start_errors_total").value == 4

    # It stays in error (the ticker keeps reconciling) until an operator starts it again.
    fake_ollama.models.append("missing-model")
    wait_for(lambda: len(audit_rows(bot, "bot.start_error")) == 4 and status_of(bot) == Status.ERROR, timeout=2)
    lifecycle.request_start(bot, actor="test")
    wait_for(lambda: status_of(bot) == Status.RUNNING, timeout=30, what="bot running after operator start")
    assert bot.start_failures == 0


def runner_pids_of_test(bot: Bot) -> list[int]:
    from django.db import connection

    from bots.lifecycle.process import process_tag

    marker = f"/{connection.settings_dict['NAME']}/{bot.pk}"
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and (process_tag(int(p)) or "").endswith(marker)]


def test_a_worker_killed_in_the_middle_of_a_start_leaves_no_orphan_and_no_duplicate(bot_worker, reconcile_ticker):
    worker = bot_worker("host-a", BOT_START_TIMEOUT="3")
    bot = Bot.objects.create(name="Interrupted", slug="interrupted")
    lifecycle.request_start(bot, actor="test")
    # The moment the runner's pid is recorded, the worker dies: the start task never finishes.
    wait_for(
        lambda: Bot.objects.filter(pk=bot.pk, status=Status.STARTING, pid__isnull=False).exists(),
        timeout=30,
        interval=0.005,
        what="runner spawned",
    )
    worker.kill()
    assert status_of(bot) == Status.STARTING

    bot_worker("host-a", BOT_START_TIMEOUT="3")
    reconcile_ticker(0.5)
    wait_for(lambda: status_of(bot) == Status.RUNNING, timeout=40, what="bot running again")
    wait_for(lambda: runner_pids_of_test(bot) == [bot.pid], timeout=10, what="exactly one runner")
    outcomes = {row.action for row in AuditLog.objects.filter(target=bot.slug)}
    # Adopted if its runner came up healthy, else cleaned up and started again: never two.
    assert outcomes & {"bot.adopted", "bot.restarted"}, outcomes


def test_ten_bots_started_together_all_run_on_distinct_ports(bot_worker):
    bot_worker("host-a")
    bots = [Bot.objects.create(name=f"Fleet {i}", slug=f"fleet-{i}") for i in range(10)]
    for bot in bots:
        lifecycle.request_start(bot, actor="test")
    wait_for(
        lambda: Bot.objects.filter(status=Status.RUNNING).count() == 10, timeout=90, interval=0.2, what="10 running"
    )
    running = list(Bot.objects.all())
    assert len({b.port for b in running}) == 10
    assert len({b.pid for b in running}) == 10
    assert all(pid_alive(b.pid) for b in running)
    assert AuditLog.objects.filter(action="bot.started").count() == 10


def test_two_concurrent_starts_of_one_bot_spawn_one_process(bot_worker):
    from deia.celery import app

    bot_worker("host-a")
    bot = Bot.objects.create(name="Twice", slug="twice")
    lifecycle.request_start(bot, actor="test")
    for _ in range(4):
        app.send_task("bots.tasks.reconcile_bot", args=[bot.pk], queue="bots")
    wait_for(lambda: status_of(bot) == Status.RUNNING, timeout=30, what="bot running")
    wait_for(lambda: not Bot.objects.filter(status=Status.STARTING).exists(), timeout=5)
    assert runner_pids_of_test(bot) == [bot.pid]
    assert len(audit_rows(bot, "bot.started")) == 1


def test_a_stop_issued_while_a_start_is_in_progress_ends_stopped_without_a_process(bot_worker):
    bot_worker("host-a")
    bot = Bot.objects.create(name="Changed mind", slug="changed-mind")
    lifecycle.request_start(bot, actor="test")
    wait_for(lambda: status_of(bot) == Status.STARTING, timeout=30, interval=0.005, what="bot starting")
    lifecycle.request_stop(bot, actor="test")
    wait_for(lambda: status_of(bot) == Status.STOPPED and not runner_pids_of_test(bot), timeout=30, what="stopped")
    # It stays stopped: nothing starts it again behind the operator's back.
    assert bot.desired_state == "stopped" and bot.pid is None


def test_each_host_stops_and_reconciles_its_own_bots(bot_worker, reconcile_ticker):
    from django.core.management import call_command

    bot_worker("host-a")
    bot_worker("host-b")
    placed = {}
    for host in ("host-a", "host-b"):
        for i in range(2):
            bot = Bot.objects.create(name=f"{host} {i}", slug=f"{host}-{i}")
            call_command("botctl", "start", bot.slug, "--host", host)
            placed[bot.pk] = host
    wait_for(lambda: Bot.objects.filter(status=Status.RUNNING).count() == 4, timeout=60, what="4 running")
    assert {b.pk: b.host for b in Bot.objects.all()} == placed

    # A crash on host-b is found by host-b's worker; a stop of a host-a bot runs on host-a.
    victim = Bot.objects.get(slug="host-b-0")
    reconcile_ticker(0.5)
    os.kill(victim.pid, signal.SIGKILL)
    wait_for(lambda: audit_rows(victim, "bot.crash"), timeout=30, what="crash detected")
    assert audit_rows(victim, "bot.crash")[0].details["host"] == "host-b"
    stopped = Bot.objects.get(slug="host-a-1")
    lifecycle.request_stop(stopped, actor="test")
    wait_for(lambda: status_of(stopped) == Status.STOPPED, timeout=30, what="host-a bot stopped")
    assert audit_rows(stopped, "bot.stopped")[0].details["host"] == "host-a"
    restarted = Bot.objects.get(slug="host-a-0")
    old_pid = restarted.pid
    lifecycle.request_restart(restarted, actor="test")
    wait_for(lambda: status_of(restarted) == Status.RUNNING and restarted.pid != old_pid, timeout=30)
    assert restarted.host == "host-a"
    assert audit_rows(restarted, "bot.restarted")[0].details["host"] == "host-a"
    # An operator's restart counts as no restart: the metric and the bots' counts agree.
    assert restarted.restart_count == 0
    counted = MetricValue.objects.filter(name="deia_bot_restarts_total").values_list("value", flat=True).first() or 0
    assert counted == sum(Bot.objects.values_list("restart_count", flat=True))
