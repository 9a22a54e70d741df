"""What the lifecycle does to the process table: SIGKILL after the grace, hung runners,
runners that outlive their worker, and runners nobody owns."""

from __future__ import annotations

import os
import signal

import pytest

from bots import lifecycle
from bots.lifecycle.process import can_bind, pid_alive
from bots.models import Bot, Status
from deia.models import AuditLog
from tests.plugins.lifecycle import stubborn_runner_env
from tests.support.procs import wait_for


def status_of(bot: Bot) -> str:
    bot.refresh_from_db()
    return bot.status


def audit_rows(action: str, **filters) -> list[AuditLog]:
    return list(AuditLog.objects.filter(action=action, **filters).order_by("created_at", "id"))


def group_members(pgid: int) -> list[int]:
    """Live processes in the process group `pgid` (the runner and what it spawned)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid and pid_alive(int(entry)):
                    members.append(int(entry))
            except ProcessLookupError:
                continue
    return members


def start_running(bot_worker, slug: str, **worker_env: str) -> Bot:
    """A bot started and running under a fresh worker of host-a (bot.worker)."""
    worker = bot_worker("host-a", **worker_env)
    bot = Bot.objects.create(name=slug.title(), slug=slug)
    lifecycle.request_start(bot, actor="test")
    wait_for(lambda: status_of(bot) == Status.RUNNING, timeout=30, what=f"{slug} running")
    bot.worker = worker
    return bot


def reconcile_rounds(worker) -> int:
    """How many reconcile_host tasks the worker has finished."""
    output = worker.proc.output()
    return sum("bots.tasks.reconcile_host[" in line and "succeeded" in line for line in output.splitlines())


def test_a_runner_ignoring_sigterm_is_killed_after_the_grace_with_its_whole_group(bot_worker, child_env):
    bot = start_running(bot_worker, "stubborn", BOT_STOP_GRACE="1", **stubborn_runner_env(child_env))
    pid, port = bot.pid, bot.port
    wait_for(lambda: len(group_members(pid)) == 2, timeout=10, what="runner and its child")
    child = next(p for p in group_members(pid) if p != pid)

    lifecycle.request_stop(bot, actor="test")
    wait_for(lambda: status_of(bot) == Status.STOPPED, timeout=30, what="bot stopped")
    stopped = audit_rows("bot.stopped", target=bot.slug)
    assert len(stopped) == 1
    assert stopped[0].details["killed"] is True and stopped[0].details["pid"] == pid
    assert not pid_alive(pid) and not pid_alive(child)
    assert group_members(pid) == []
    assert can_bind(port)
    assert (bot.pid, bot.port) == (None, None)


@pytest.fixture
def frozen_pids():
    """pids a test SIGSTOPped: continued and killed at teardown, whatever happened."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break


def test_a_hung_runner_with_a_stale_heartbeat_is_audited_once_as_a_crash_and_replaced(
    bot_worker, reconcile_ticker, frozen_pids
):
    bot = start_running(bot_worker, "hung", BOT_HEARTBEAT_STALE="2")
    old_pid = bot.pid
    reconcile_ticker(0.5)

    frozen_pids.append(old_pid)
    os.kill(old_pid, signal.SIGSTOP)  # alive, in the process table, but no heartbeat any more
    wait_for(lambda: status_of(bot) == Status.RUNNING and bot.pid != old_pid, timeout=30, what="bot replaced")
    crashes = audit_rows("bot.crash", target=bot.slug)
    assert len(crashes) == 1
    assert crashes[0].details["pid"] == old_pid and "heartbeat" in crashes[0].details["reason"]
    assert pid_alive(bot.pid)
    wait_for(lambda: not pid_alive(old_pid), timeout=10, what="hung runner killed")
    assert len(audit_rows("bot.restarted", target=bot.slug)) == 1


def test_a_running_bot_is_adopted_by_its_hosts_new_worker_and_never_started_twice(bot_worker, reconcile_ticker):
    bot = start_running(bot_worker, "survivor")
    pid = bot.pid
    bot.worker.kill()  # the worker's group only: the runner leads its own session
    assert pid_alive(pid)
    lifecycle_rows = ("bot.started", "bot.restarted", "bot.crash", "bot.adopted", "bot.stopped")
    before = AuditLog.objects.filter(target=bot.slug, action__in=lifecycle_rows).count()

    worker = bot_worker("host-a")
    reconcile_ticker(0.3)
    wait_for(lambda: reconcile_rounds(worker) >= 5, timeout=30, what="5 reconcile rounds on host-a")
    assert status_of(bot) == Status.RUNNING and bot.pid == pid and pid_alive(pid)
    assert AuditLog.objects.filter(target=bot.slug, action__in=lifecycle_rows).count() == before
    assert "{'ok': 1}" in worker.proc.output()  # it checked the bot and found it healthy
    heartbeat = bot.last_heartbeat
    wait_for(lambda: status_of(bot) and bot.last_heartbeat > heartbeat, timeout=10, what="heartbeat still moving")


def test_a_runner_left_behind_by_a_deleted_bot_row_is_killed_once_and_audited_once(
    bot_worker, reconcile_ticker, child_env
):
    bot = start_running(bot_worker, "orphan", **stubborn_runner_env(child_env))
    pid, bot_id = bot.pid, bot.pk
    # Behind the lifecycle's back; this runner ignores the SIGTERM it sends itself when its row is gone.
    Bot.objects.filter(pk=bot_id).delete()
    reconcile_ticker(0.3)
    wait_for(lambda: not pid_alive(pid), timeout=30, what="orphan runner killed")
    rounds = reconcile_rounds(bot.worker)
    wait_for(lambda: reconcile_rounds(bot.worker) >= rounds + 3, timeout=30, what="3 more reconcile rounds")

    kills = audit_rows("bot.orphan_killed")
    assert len(kills) == 1
    assert kills[0].actor == "reconcile"
    assert kills[0].details["pid"] == pid and kills[0].details["bot_id"] == bot_id
    assert kills[0].details["host"] == "host-a" and "no bot" in kills[0].details["reason"]
    assert group_members(pid) == []
