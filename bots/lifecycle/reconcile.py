"""The control loop: compare desired state with the process table and act.

reconcile_all (shared queue, beat): settles stopped bots, enqueues the starts that are due,
and fans reconcile_host out to every host that owns processes. reconcile_host (that host's
queue) checks each of its bots and kills runners no bot owns. reconcile_bot does one bot.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bots.lifecycle import dispatch, drain, hosts, template
from bots.lifecycle.machine import SETTLEABLE, STARTABLE, Outcome
from bots.lifecycle.placement import Fleet, place
from bots.lifecycle.process import is_healthy, is_runner, reap_children, runner_pids, terminate
from bots.lifecycle.state import (
    fleet_lock,
    heartbeat_stale,
    host_lock,
    lock_bot,
    record_kill,
    start_due,
    start_overdue,
)
from bots.lifecycle.stop import kill_strays, settle_stopped, stop_bot
from bots.lifecycle.transitions import adopt, fail_interrupted_start, mark_crashed, reset_failures_if_healthy, start_bot
from bots.models import Bot, DesiredState, Host, Status, db_now
from deia.audit_actions import Action

log = logging.getLogger("deia.lifecycle")


def reconcile_bot(bot_id: int, seen: dict[int, int] | None = None) -> Outcome:
    """Bring one bot one step closer to its desired state (on its own host if it has a process).

    `seen`: reconcile_host's one scan of this host's runners for the whole pass (see kill_strays).
    """
    reap_children()
    bot = Bot.objects.filter(pk=bot_id).first()
    if bot is None:
        return Outcome.GONE
    if dispatch.owned_elsewhere(bot):
        dispatch.reconcile_soon(bot)
        return Outcome.REROUTED
    if bot.status == Status.RUNNING:
        return _check_running(bot, seen)
    if bot.status == Status.STARTING:
        if start_overdue(bot):
            if bot.pid and is_runner(bot.pid, bot.pk) and is_healthy(bot.port, bot.pk, bot.pid):
                kill_strays(bot.pk, seen, owner=bot.pid)
                return adopt(bot.pk, bot.pid)
            return fail_interrupted_start(bot)
        if bot.desired_state == DesiredState.STOPPED and bot.pid:
            return stop_bot(bot.pk)
        return Outcome.STARTING
    if bot.status == Status.STOPPING:
        return stop_bot(bot.pk)
    # No process should exist for the remaining statuses.
    kill_strays(bot.pk, seen)
    if bot.desired_state == DesiredState.STOPPED:
        return settle_stopped(bot.pk)
    if start_due(bot):
        return start_bot(bot.pk)
    return Outcome.WAITING


def _check_running(bot: Bot, seen: dict[int, int] | None) -> Outcome:
    if bot.desired_state == DesiredState.STOPPED:
        return stop_bot(bot.pk)
    kill_strays(bot.pk, seen, owner=bot.pid)
    if not is_runner(bot.pid, bot.pk):
        return mark_crashed(bot.pk, bot.pid, f"process {bot.pid} is gone")
    if heartbeat_stale(bot):
        return mark_crashed(bot.pk, bot.pid, f"heartbeat older than {settings.BOT_HEARTBEAT_STALE:g} s")
    reset_failures_if_healthy(bot)
    return Outcome.OK


def reconcile_host(host: str | None = None) -> dict[str, int]:
    """Check every bot whose process this host holds, then kill runners that no bot owns."""
    if host and host != settings.HOSTNAME:
        dispatch.reconcile_host_soon(host)
        return {Outcome.REROUTED: 1}
    reap_children()
    outcomes: dict[str, int] = {}
    if hosts.rejoin_if_lost():
        outcomes[Outcome.FENCED] = 1
    template.ensure_started()  # supervision: a template that died is started again
    seen = runner_pids()  # one scan of /proc for the whole pass, not one per bot
    checked = list(Bot.objects.filter(host=settings.HOSTNAME).values_list("pk", flat=True))
    for bot_id in checked:
        outcome = reconcile_bot(bot_id, seen)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    killed = kill_orphans(seen, checked=set(checked))
    if killed:
        outcomes[Outcome.ORPHANS_KILLED] = killed
    return outcomes


def kill_orphans(seen: dict[int, int] | None = None, checked: set[int] = frozenset()) -> int:
    """Runners of this host that no bot row claims (deleted bots, lost starts).

    `seen` is the pass's scan of /proc; the bots in `checked` had their strays looked for in
    this pass already.
    """
    pids = runner_pids() if seen is None else seen
    if not pids:
        return 0
    existing = set(Bot.objects.filter(pk__in=set(pids.values())).values_list("pk", flat=True))
    killed = 0
    for bot_id in existing - checked:
        killed += len(kill_strays(bot_id, seen))
    if not set(pids.values()) - existing:
        return killed
    with transaction.atomic():
        host_lock(settings.HOSTNAME)  # one sweep at a time: each orphan is killed and audited once
        for pid, bot_id in runner_pids().items():
            if bot_id in existing or Bot.objects.filter(pk=bot_id).exists():
                continue  # only runners whose bot row is gone
            terminate(pid, 0)
            record_kill(None, bot_id, pid, Action.BOT_ORPHAN_KILLED, "no bot row claims this runner")
            killed += 1
    return killed


def reconcile_all() -> dict[str, int]:
    """Beat's entry point (shared queue): every bot gets looked at by the right worker.

    First failover: hosts past their lease are lost and their bots marked lost; then every
    due start (lost bots included) is placed on a host and sent to that host's queue.
    """
    reap_children()
    with transaction.atomic():
        fleet_lock()
        hosts.mark_lost_hosts(db_now())
    now = timezone.now()
    summary = {"settled": 0, "starts": 0, "hosts": 0}
    settle = Bot.objects.filter(desired_state=DesiredState.STOPPED, status__in=SETTLEABLE)
    for bot_id in settle.values_list("pk", flat=True):
        summary["settled"] += settle_stopped(bot_id) == Outcome.STOPPED
    candidates = Bot.objects.filter(desired_state=DesiredState.RUNNING, status__in=STARTABLE).filter(
        Q(next_start_at__isnull=True) | Q(next_start_at__lte=now)
    )
    due = [bot.pk for bot in candidates if start_due(bot, now)]
    summary["starts"] = place_starts(due)
    summary["moves"] = drain.next_moves()
    hosts_ = set(Bot.objects.exclude(host="").values_list("host", flat=True).distinct())
    hosts_.add(settings.HOSTNAME)  # this host's orphans are looked for even if it owns no bot
    for host in sorted(hosts_ - set(Host.objects.filter(lost_at__isnull=False).values_list("name", flat=True))):
        summary["hosts"] += dispatch.reconcile_host_soon(host)
    return summary


def place_starts(due: list[int]) -> int:
    """Place each due start on a host (under fleet_lock) and send it there; returns how many were sent.

    One task per bot so starts run in parallel across the workers' pools.
    """
    sent = []
    with transaction.atomic():
        fleet_lock()
        fleet = Fleet.read()
        for bot_id in due:
            bot = lock_bot(bot_id)
            if bot is None or not start_due(bot):
                continue
            if not fleet.legacy and not (bot.host and fleet.accepts(bot.host)):
                placed = place(bot, fleet)
                if isinstance(placed, str):
                    if bot.last_error != placed:
                        Bot.objects.filter(pk=bot.pk).update(last_error=placed)
                    continue
            sent.append(bot)
    return sum(dispatch.reconcile_soon(bot, from_loop=True) for bot in sent)
