"""The lifecycle's own transitions: start, adopt, crash, restart (stop: bots.lifecycle.stop).

Run inside Celery workers. Every status change goes through bots.lifecycle.machine.move().

Each transition is claimed under the bot's row lock, the slow part (spawn and wait for
/health, SIGTERM grace) runs without the lock, and the result is written under the lock
again only if nothing changed meanwhile. Every function can run twice (acks_late) and
concurrently with itself without starting a second process.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from bots import metrics
from bots.lifecycle import dispatch, template
from bots.lifecycle.machine import Event, Outcome, move
from bots.lifecycle.placement import Fleet, place
from bots.lifecycle.process import (
    exit_status,
    is_runner,
    kill_group,
    last_lines,
    log_path,
    pick_port,
    reap_children,
    terminate,
    wait_ready,
)
from bots.lifecycle.state import (
    backoff,
    capacity_refusal,
    clear_process,
    fleet_lock,
    lock_bot,
    record,
    start_due,
    taken_ports,
)
from bots.lifecycle.stop import kill_strays, stop_bot
from bots.models import PROCESS_FIELDS, Bot, DesiredState, Status
from deia.audit_actions import Action
from deia.redact import redact

log = logging.getLogger("deia.lifecycle")


# --- start ------------------------------------------------------------------------------
class StartReason(StrEnum):
    START = "start"  # audited as bot.started
    CRASH = "crash"  # an automatic restart: bot.restarted, counted in restart_count
    RESTART = "restart"  # an operator's restart: bot.restarted


@dataclass(frozen=True)
class Claim:
    """The claim step: `bot` is now STARTING here with a port, or `outcome` says why not."""

    bot: Bot | None = None
    reason: StartReason = StartReason.START
    outcome: Outcome | None = None


@dataclass(frozen=True)
class Launch:
    """The act step: runner `pid` answered after `seconds`, or `outcome` says how the start ended."""

    pid: int | None = None
    seconds: float = 0.0
    outcome: Outcome | None = None


def start_bot(bot_id: int, *, reason: str | None = None) -> Outcome:
    """Start the bot here if it should run, may run and is due. Returns what happened."""
    reap_children()
    claim = _claim_start(bot_id, reason)
    if claim.outcome:
        return claim.outcome
    launch = _launch(claim.bot)
    if launch.outcome:
        return launch.outcome
    return _finish_start(bot_id, launch.pid, launch.seconds, claim.reason)


def _claim_start(bot_id: int, reason: str | None) -> Claim:
    for _attempt in range(3):
        try:
            with transaction.atomic():
                fleet_lock()
                bot = lock_bot(bot_id)
                if bot is None:
                    return Claim(outcome=Outcome.GONE)
                if not start_due(bot, past_hold=reason == StartReason.RESTART):
                    return Claim(outcome=Outcome.NOT_DUE)
                elsewhere = _placed_elsewhere(bot)
                if elsewhere:
                    _release_restart_hold(bot, reason)
                    return Claim(outcome=elsewhere)
                refusal = capacity_refusal(bot)
                if refusal:
                    _release_restart_hold(bot, reason)
                    if bot.last_error != refusal:
                        Bot.objects.filter(pk=bot.pk).update(last_error=refusal)
                    log.info("start deferred", extra={"bot": bot.slug, "action": "bot.start_deferred"})
                    return Claim(outcome=Outcome.REFUSED)
                port = pick_port(taken_ports(exclude=bot.pk))
                if port is None:
                    error = f"no free port in BOT_PORT_RANGE {settings.BOT_PORT_RANGE}"
                    _fail_locked(bot, Event.NO_PORT, error, None, None)
                    return Claim(outcome=Outcome.ERROR)
                why = StartReason(reason or ("crash" if bot.status == Status.CRASHED else "start"))
                clear_process(bot)
                bot.port = port
                bot.host = settings.HOSTNAME
                bot.advertise_host = settings.BOT_ADVERTISE_HOST
                # A fresh secret per start: a previous runner's secret opens nothing.
                bot.chat_secret = secrets.token_urlsafe(32)
                # While starting, started_at is the claim time: reconcile's deadline for the start.
                bot.started_at = timezone.now()
                bot.startup_seconds = None
                bot.next_start_at = None
                bot.generation += 1  # fences every older runner of the bot (its heartbeat, the relay)
                fields = [*PROCESS_FIELDS, "startup_seconds", "next_start_at", "generation"]
                with transaction.atomic():  # the unique port is the final guard
                    move(bot, Event.CLAIM, Status.STARTING, fields)
                return Claim(bot, why)
        except IntegrityError:
            continue
    return Claim(outcome=Outcome.PORT_RACE)


def _release_restart_hold(bot: Bot, reason: str | None) -> None:
    """A restart that cannot start here (sent to another host, or waiting for room) leaves the
    bot to reconcile at once, as any start does: its hold (stop_bot's) is lifted."""
    if reason == StartReason.RESTART and bot.next_start_at is not None:
        bot.next_start_at = None
        Bot.objects.filter(pk=bot.pk).update(next_start_at=None)


def _placed_elsewhere(bot: Bot) -> Outcome | None:
    """None if this host is to start the locked bot; else it was sent to its host, or waits for room.

    A bot placed on an alive host keeps it; one unplaced, or placed on a host that is lost or
    draining, is placed now (under the fleet lock its caller holds).
    """
    fleet = Fleet.read()
    if fleet.legacy:
        return None
    if not (bot.host and fleet.accepts(bot.host)):
        placed = place(bot, fleet)
        if isinstance(placed, str):
            if bot.last_error != placed:
                Bot.objects.filter(pk=bot.pk).update(last_error=placed)
            return Outcome.REFUSED
    if bot.host == settings.HOSTNAME:
        return None
    transaction.on_commit(lambda: dispatch.reconcile_soon(bot))
    return Outcome.REROUTED


def _launch(bot: Bot) -> Launch:
    """Spawn the claimed bot's runner and wait for its /health; a failure is recorded here."""
    began = time.monotonic()
    try:
        spawned = template.spawn(bot, bot.port, bot.chat_secret, bot.generation)
    except OSError as exc:
        _fail_start(bot.pk, None, f"cannot spawn the runner: {exc}")
        return Launch(outcome=Outcome.ERROR)
    # The runner's heartbeat matches on pid, so the pid is stored before waiting.
    recorded = Bot.objects.filter(
        pk=bot.pk, status=Status.STARTING, host=settings.HOSTNAME, port=bot.port, pid=None, generation=bot.generation
    ).update(pid=spawned.pid)
    if not recorded:
        # A stop or a clean-up took the bot while we spawned: this process must not live.
        terminate(spawned.pid, 0)
        return Launch(spawned.pid, outcome=Outcome.SUPERSEDED)
    error = wait_ready(spawned, bot.pk, bot.port, began + settings.BOT_START_TIMEOUT)
    if error:
        kill_group(spawned.pid)
        reap_children()
        _fail_start(bot.pk, spawned.pid, error, exit_code=spawned.exit_code())
        return Launch(spawned.pid, outcome=Outcome.ERROR)
    return Launch(spawned.pid, time.monotonic() - began)


def _finish_start(bot_id: int, pid: int, seconds: float, reason: StartReason) -> Outcome:
    with transaction.atomic():
        bot = lock_bot(bot_id)
        if bot is None or bot.pid != pid or bot.status != Status.STARTING:
            if bot is None or bot.pid != pid:
                # Deleted, stopped or taken over meanwhile: our process is nobody's bot.
                terminate(pid, 0)
            return Outcome.SUPERSEDED
        bot.startup_seconds = round(seconds, 4)
        if reason == StartReason.CRASH:
            # Automatic restarts only, as deia_bot_restarts_total: an operator's restart is no symptom.
            bot.restart_count += 1
        _become_running(bot, Event.STARTED, ["startup_seconds", "restart_count"])
        action = Action.BOT_STARTED if reason == StartReason.START else Action.BOT_RESTARTED
        record(bot, action, details={"pid": pid, "port": bot.port, "startup_seconds": bot.startup_seconds})
        metrics.STARTS.inc(result="ok")
        metrics.STARTUP_SECONDS.observe(seconds)
        if reason == StartReason.CRASH:
            metrics.RESTARTS.inc()
        desired = bot.desired_state
    if desired == DesiredState.STOPPED:
        # A stop was requested while the bot was starting.
        stop_bot(bot_id)
    return Outcome.STARTED


def _become_running(bot: Bot, event: Event, fields: list[str] | None = None) -> None:
    """STARTING -> RUNNING: from now on its heartbeat is watched."""
    bot.started_at = timezone.now()
    bot.last_heartbeat = bot.started_at
    bot.last_error = ""
    move(bot, event, Status.RUNNING, [*PROCESS_FIELDS, "last_error", *(fields or [])])


def _fail_start(bot_id: int, pid: int | None, error: str, exit_code: int | None = None, kill: bool = False) -> None:
    with transaction.atomic():
        bot = lock_bot(bot_id)
        if bot is None or bot.status != Status.STARTING or bot.pid != pid:
            return  # stopped, adopted or cleaned up meanwhile
        if kill and pid and is_runner(pid, bot.pk):
            kill_group(pid)
        _fail_locked(bot, Event.START_FAILED, error, pid, exit_code)


# What a failure writes besides the status.
FAILURE_FIELDS = [*PROCESS_FIELDS, "last_error", "start_failures", "next_start_at"]


def _fail_locked(bot: Bot, event: Event, error: str, pid: int | None, exit_code: int | None) -> None:
    """A failed start: CRASHED (retried after backoff), ERROR after too many, STOPPED if a stop came."""
    port = bot.port
    clear_process(bot)
    bot.last_error = redact(error)[:2000]
    if bot.desired_state == DesiredState.STOPPED:
        target, gave_up = Status.STOPPED, {}
        bot.next_start_at = None
    else:
        target, gave_up = _count_failure(bot)
    move(bot, event, target, FAILURE_FIELDS)
    retry_in = backoff(bot.start_failures) if bot.status == Status.CRASHED else None
    details = {"error": bot.last_error, "pid": pid, "port": port, "exit_code": exit_code, "retry_in": retry_in}
    level = logging.ERROR if gave_up else logging.WARNING
    record(bot, Action.BOT_START_ERROR, details={**details, "failures": bot.start_failures, **gave_up}, level=level)
    metrics.STARTS.inc(result="error")
    metrics.START_ERRORS.inc()
    _schedule_retry(bot)


def _count_failure(bot: Bot) -> tuple[Status, dict]:
    """One more failure in a row: CRASHED until the backoff is over, or ERROR at the retry limit.

    Returns the status to move to and, at the limit, the details the failure's audit row adds.
    """
    bot.start_failures += 1
    if bot.start_failures >= settings.BOT_MAX_START_RETRIES:
        bot.next_start_at = None
        return Status.ERROR, {"status": Status.ERROR.value, "gave_up_after": bot.start_failures}
    bot.next_start_at = timezone.now() + timedelta(seconds=backoff(bot.start_failures))
    return Status.CRASHED, {}


def _schedule_retry(bot: Bot) -> None:
    """A crashed bot is looked at again when its backoff is over."""
    if bot.status != Status.CRASHED:
        return
    delay = (bot.next_start_at - timezone.now()).total_seconds()
    transaction.on_commit(
        lambda: dispatch.reconcile_soon(bot, queue=dispatch.SHARED_QUEUE, countdown=max(delay, 0), from_loop=True)
    )


# --- adopt and crash --------------------------------------------------------------------
def adopt(bot_id: int, pid: int) -> Outcome:
    """A STARTING bot whose start task was lost but whose runner is healthy becomes RUNNING."""
    with transaction.atomic():
        bot = lock_bot(bot_id)
        if bot is None or bot.status != Status.STARTING or bot.pid != pid:
            return Outcome.SUPERSEDED
        _become_running(bot, Event.ADOPTED)
        record(bot, Action.BOT_ADOPTED, details={"pid": pid, "port": bot.port})
    return Outcome.ADOPTED


def mark_crashed(bot_id: int, pid: int | None, reason: str) -> Outcome:
    """RUNNING -> CRASHED (process gone or heartbeat stale); the restart follows the backoff."""
    with transaction.atomic():
        bot = lock_bot(bot_id)
        if bot is None or bot.status != Status.RUNNING or bot.pid != pid:
            return Outcome.SUPERSEDED
        if pid and is_runner(pid, bot.pk):
            kill_group(pid)  # hung: it cannot be trusted to finish anything
            exit_ = "SIGKILL"
        else:
            reap_children()  # if this process is its parent, its status is noted now
            exit_ = exit_status(pid)
        # What the runbook looks at first: how it ended and what it said last.
        output = [redact(line) for line in last_lines(log_path(bot.slug))]
        port = bot.port
        uptime = (timezone.now() - bot.started_at).total_seconds() if bot.started_at else None
        clear_process(bot)
        target, gave_up = _count_failure(bot)
        bot.last_error = redact(reason)
        move(bot, Event.CRASH, target, FAILURE_FIELDS)
        retry_in = None if gave_up else backoff(bot.start_failures)
        details = {"pid": pid, "port": port, "reason": reason, "uptime_seconds": uptime, "retry_in": retry_in}
        details |= {"exit": exit_, "last_lines": output}
        record(
            bot,
            Action.BOT_CRASH,
            details={**details, "failures": bot.start_failures, **gave_up},
            level=logging.ERROR if gave_up else logging.WARNING,
        )
        metrics.CRASHES.inc()
        _schedule_retry(bot)
    reap_children()
    return Outcome.CRASHED


def fail_interrupted_start(bot: Bot) -> Outcome:
    """A start whose worker was lost: kill whatever it left, count it as a failed start."""
    _fail_start(bot.pk, bot.pid, "start interrupted: the worker starting it was lost", kill=True)
    kill_strays(bot.pk)
    return Outcome.ERROR


def reset_failures_if_healthy(bot: Bot) -> None:
    """After BOT_BACKOFF_RESET seconds of health, the next crash starts the backoff afresh."""
    healthy_for = timedelta(seconds=settings.BOT_BACKOFF_RESET)
    if bot.start_failures and bot.started_at and timezone.now() - bot.started_at >= healthy_for:
        Bot.objects.filter(pk=bot.pk, pid=bot.pid, status=Status.RUNNING).update(start_failures=0)


def restart_bot(bot_id: int, pid: int | None) -> Outcome:
    """An operator's restart: stop the process that ran when it was asked, then start anew."""
    bot = Bot.objects.filter(pk=bot_id).first()
    if bot is None:
        return Outcome.GONE
    if dispatch.owned_elsewhere(bot):
        dispatch.send("bots.tasks.restart_bot", [bot_id, pid], dispatch.queue_for(bot))
        return Outcome.REROUTED
    if pid and bot.status == Status.RUNNING and bot.pid == pid:
        # Held from reconcile until our start below: a pass in between would start it as a plain start.
        stop_bot(bot_id, expected_pid=pid, hold=settings.BOT_START_TIMEOUT)
        # Restarted where it ran, unless this host takes no bot now (the claim places it then).
        Bot.objects.filter(pk=bot_id, host="").update(host=settings.HOSTNAME)
        return start_bot(bot_id, reason=StartReason.RESTART)
    # Done already (a redelivered task) or not running any more: start it if it is due.
    return start_bot(bot_id)
