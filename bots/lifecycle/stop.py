"""The stop transition: SIGTERM, grace, SIGKILL of the group, then STOPPED (and deleted if asked).

Also the sweep that keeps one process per bot: runners its row does not own are killed.
Like every transition it runs inside Celery workers (or botctl shutdown-host) and can run
twice or concurrently with itself.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bots.lifecycle.machine import SETTLEABLE, Event, Outcome, move
from bots.lifecycle.process import is_runner, reap_children, runner_pids, terminate
from bots.lifecycle.state import clear_process, lock_bot, record, record_kill
from bots.models import PROCESS_FIELDS, PROCESS_STATES, Bot, DesiredState, Status
from deia.audit_actions import Action


def kill_strays(bot_id: int, seen: dict[int, int] | None = None, owner: int | None = None) -> list[int]:
    """Kill this host's runners of the bot that its row does not own: never two processes of one bot.

    Decided under the row lock on a fresh read, so a runner spawned by a start that claimed
    the bot after our caller looked at it is never mistaken for a stray. `seen` is a pass's
    one scan of /proc (runner_pids()): when it shows no runner of this bot but `owner`, the
    bot's own process as its caller read it, nothing is locked or scanned again. A runner
    spawned after that scan waits for the next pass, never the other way round.
    """
    suspects = (
        {pid for pid, owned_by in seen.items() if owned_by == bot_id} if seen is not None else runner_pids(bot_id)
    )
    if not set(suspects) - {owner}:
        return []
    with transaction.atomic():
        bot = lock_bot(bot_id)
        if bot is not None and bot.status == Status.STARTING and bot.pid is None:
            return []  # a spawn is in flight; its start task records the pid
        handover = bot.handover if bot is not None and bot.handover.get("host") == settings.HOSTNAME else {}
        if handover and not handover.get("pid"):
            return []  # a drain's spawn is in flight here (bots.lifecycle.drain)
        owns = bot is not None and bot.status in PROCESS_STATES and bot.host == settings.HOSTNAME
        keep = bot.pid if owns else None
        # Listed again under the lock: a concurrent sweep may have killed (and audited) some.
        killed = [pid for pid in runner_pids(bot_id) if pid not in (keep, handover.get("pid"))]
        for pid in killed:
            terminate(pid, 0)
            reason = (
                f"the bot's process is {keep}"
                if keep
                else f"the bot has no process here ({bot.status if bot else 'gone'})"
            )
            record_kill(bot, bot_id, pid, Action.BOT_STRAY_KILLED, reason)
    return killed


def stop_bot(bot_id: int, *, expected_pid: int | None = None, actor: str | None = None, hold: float = 0) -> Outcome:
    """Stop the bot's process (SIGTERM, grace, SIGKILL of the group) and mark it stopped.

    A bot an operator deleted (delete_requested) is deleted once stopped. With `hold`, no
    reconcile pass starts the stopped bot for that many seconds: a restart starts it itself
    right after, and its start is then audited as the restart it is. The hold is written with
    STOPPING, so a concurrent stop of the same process (reconcile's) keeps it.
    """
    reap_children()
    with transaction.atomic():
        bot = lock_bot(bot_id)
        if bot is None:
            return Outcome.GONE
        if expected_pid is not None and bot.pid != expected_pid:
            return Outcome.SUPERSEDED
        pid, port = bot.pid, bot.port
        if bot.status not in PROCESS_STATES or pid is None:
            # No process to signal (a start not yet spawned aborts itself when it sees this).
            _mark_stopped(bot, pid, port, killed=False, actor=actor)
            return Outcome.STOPPED
        if hold:
            bot.next_start_at = timezone.now() + timedelta(seconds=hold)
        elif bot.status != Status.STOPPING:  # a stop already under way may carry a restart's hold
            bot.next_start_at = None
        move(bot, Event.STOP, Status.STOPPING, ["next_start_at"])
    killed = terminate(pid, settings.BOT_STOP_GRACE) if is_runner(pid, bot_id) else False
    kill_strays(bot_id)
    with transaction.atomic():
        bot = lock_bot(bot_id)
        if bot is None:
            return Outcome.GONE
        if bot.status == Status.STOPPING and bot.pid == pid:
            _mark_stopped(bot, pid, port, killed=killed, actor=actor)
        elif bot.delete_requested:
            _delete(bot, actor)
    return Outcome.STOPPED


def _mark_stopped(bot: Bot, pid: int | None, port: int | None, *, killed: bool, actor: str | None):
    if bot.status != Status.STOPPED or bot.pid or bot.port:
        held = bot.status == Status.STOPPING and bot.next_start_at and bot.next_start_at > timezone.now()
        clear_process(bot)
        # A restart's hold stays (see stop_bot); any other pending start time is void once stopped.
        bot.next_start_at = bot.next_start_at if held else None
        move(bot, Event.STOPPED, Status.STOPPED, [*PROCESS_FIELDS, "next_start_at"])
        record(
            bot, Action.BOT_STOPPED, actor=actor or "reconcile", details={"pid": pid, "port": port, "killed": killed}
        )
    if bot.delete_requested:
        _delete(bot, actor)


def _delete(bot: Bot, actor: str | None) -> None:
    record(bot, Action.BOT_DELETED, actor=actor or "reconcile", details={"bot_id": bot.pk})
    bot.delete()


def settle_stopped(bot_id: int) -> Outcome:
    """Desired stopped, no process of ours (crashed, error, lost): the observed status becomes stopped."""
    with transaction.atomic():
        bot = lock_bot(bot_id)
        if bot is None or bot.desired_state != DesiredState.STOPPED or bot.status not in SETTLEABLE:
            return Outcome.NOOP
        _mark_stopped(bot, None, None, killed=False, actor=None)
    return Outcome.STOPPED
