"""The lifecycle's own transitions: start, stop, crash, adopt. Run inside Celery workers.

Each transition is claimed under the bot's row lock, the slow part (spawn and wait for
/health, SIGTERM grace) runs without the lock, and the result is written under the lock
again only if nothing changed meanwhile. Every function can run twice (acks_late) and
concurrently with itself without starting a second process.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from bots import metrics
from bots.lifecycle import dispatch
from bots.lifecycle.process import (
    exit_status,
    health,
    is_runner,
    kill_group,
    last_lines,
    log_path,
    pick_port,
    reap_children,
    runner_pids,
    spawn_runner,
    terminate,
    wait_ready,
)
from bots.lifecycle.state import (
    PROCESS_FIELDS,
    backoff,
    capacity_refusal,
    clear_process,
    fleet_lock,
    locked,
    record,
    record_kill,
    start_due,
)
from bots.models import PROCESS_STATES, Bot, DesiredState, Status
from deia.audit_actions import Action
from deia.redact import redact

log = logging.getLogger("deia.lifecycle")


# --- start ------------------------------------------------------------------------------
def start_bot(bot_id: int, *, reason: str | None = None) -> str:
    """Start the bot here if it should run, may run and is due. Returns what happened."""
    reap_children()
    claim = _claim_start(bot_id, reason)
    if isinstance(claim, str):
        return claim
    bot, reason = claim
    began = time.monotonic()
    try:
        spawned = spawn_runner(bot.pk, bot.slug, bot.port, bot.chat_secret)
    except OSError as exc:
        _fail_start(bot.pk, None, f"cannot spawn the runner: {exc}")
        return "error"
    # The runner's heartbeat matches on pid, so the pid is stored before waiting.
    recorded = Bot.objects.filter(
        pk=bot.pk, status=Status.STARTING, host=settings.HOSTNAME, port=bot.port, pid=None
    ).update(pid=spawned.pid)
    if not recorded:
        # A stop or a clean-up took the bot while we spawned: this process must not live.
        terminate(spawned.pid, 0)
        return "superseded"
    error = wait_ready(spawned, bot.pk, bot.port, began + settings.BOT_START_TIMEOUT)
    if error:
        kill_group(spawned.pid)
        reap_children()
        _fail_start(bot.pk, spawned.pid, error, exit_code=spawned.exit_code())
        return "error"
    return _finish_start(bot.pk, spawned.pid, time.monotonic() - began, reason)


def _claim_start(bot_id: int, reason: str | None) -> tuple[Bot, str] | str:
    for _attempt in range(3):
        try:
            with transaction.atomic():
                fleet_lock()
                bot = locked(bot_id)
                if bot is None:
                    return "gone"
                if not start_due(bot):
                    return "not due"
                refusal = capacity_refusal(bot)
                if refusal:
                    if bot.last_error != refusal:
                        Bot.objects.filter(pk=bot.pk).update(last_error=refusal)
                    log.info("start deferred", extra={"bot": bot.slug, "action": "bot.start_deferred"})
                    return "refused"
                taken = set(Bot.objects.exclude(pk=bot.pk).exclude(port=None).values_list("port", flat=True))
                port = pick_port(taken)
                if port is None:
                    _fail_locked(bot, f"no free port in BOT_PORT_RANGE {settings.BOT_PORT_RANGE}", None, None)
                    return "error"
                reason = reason or ("crash" if bot.status == Status.CRASHED else "start")
                clear_process(bot)
                bot.status = Status.STARTING
                bot.port = port
                bot.host = settings.HOSTNAME
                bot.advertise_host = settings.BOT_ADVERTISE_HOST
                # A fresh secret per start: a previous runner's secret opens nothing.
                bot.chat_secret = secrets.token_urlsafe(32)
                # While starting, started_at is the claim time: reconcile's deadline for the start.
                bot.started_at = timezone.now()
                bot.startup_seconds = None
                bot.next_start_at = None
                with transaction.atomic():  # the unique port is the final guard
                    bot.save(update_fields=[*PROCESS_FIELDS, "startup_seconds", "next_start_at"])
                return bot, reason
        except IntegrityError:
            continue
    return "port race"


def _finish_start(bot_id: int, pid: int, seconds: float, reason: str) -> str:
    with transaction.atomic():
        bot = locked(bot_id)
        if bot is None or bot.pid != pid or bot.status != Status.STARTING:
            if bot is None or bot.pid != pid:
                # Deleted, stopped or taken over meanwhile: our process is nobody's bot.
                terminate(pid, 0)
            return "superseded"
        bot.status = Status.RUNNING
        bot.started_at = timezone.now()
        bot.last_heartbeat = bot.started_at
        bot.startup_seconds = round(seconds, 4)
        bot.last_error = ""
        if reason == "crash":
            # Automatic restarts only, as deia_bot_restarts_total: an operator's restart is no symptom.
            bot.restart_count += 1
        bot.save(update_fields=[*PROCESS_FIELDS, "startup_seconds", "last_error", "restart_count"])
        action = Action.BOT_STARTED if reason == "start" else Action.BOT_RESTARTED
        record(bot, action, details={"pid": pid, "port": bot.port, "startup_seconds": bot.startup_seconds})
        metrics.STARTS.inc(result="ok")
        metrics.STARTUP_SECONDS.observe(seconds)
        if reason == "crash":
            metrics.RESTARTS.inc()
        desired = bot.desired_state
    if desired == DesiredState.STOPPED:
        # A stop was requested while the bot was starting.
        stop_bot(bot_id)
    return "started"


def _fail_start(bot_id: int, pid: int | None, error: str, exit_code: int | None = None, kill: bool = False) -> None:
    with transaction.atomic():
        bot = locked(bot_id)
        if bot is None or bot.status != Status.STARTING or bot.pid != pid:
            return  # stopped, adopted or cleaned up meanwhile
        if kill and pid and is_runner(pid, bot.pk):
            kill_group(pid)
        _fail_locked(bot, error, pid, exit_code)


def _fail_locked(bot: Bot, error: str, pid: int | None, exit_code: int | None) -> None:
    """STARTING -> CRASHED (retried after backoff) or -> ERROR after too many failures."""
    port = bot.port
    clear_process(bot)
    bot.last_error = redact(error)[:2000]
    if bot.desired_state == DesiredState.STOPPED:
        bot.status = Status.STOPPED
        bot.next_start_at = None
    else:
        _count_failure(bot)
    gave_up = _give_up_at_limit(bot)
    bot.save(update_fields=[*PROCESS_FIELDS, "last_error", "start_failures", "next_start_at"])
    retry_in = backoff(bot.start_failures) if bot.status == Status.CRASHED else None
    details = {"error": bot.last_error, "pid": pid, "port": port, "exit_code": exit_code, "retry_in": retry_in}
    level = logging.ERROR if gave_up else logging.WARNING
    record(bot, Action.BOT_START_ERROR, details={**details, "failures": bot.start_failures, **gave_up}, level=level)
    metrics.STARTS.inc(result="error")
    metrics.START_ERRORS.inc()
    _schedule_retry(bot)


def _count_failure(bot: Bot) -> None:
    bot.status = Status.CRASHED
    bot.start_failures += 1
    bot.next_start_at = timezone.now() + timedelta(seconds=backoff(bot.start_failures))


def _give_up_at_limit(bot: Bot) -> dict:
    """CRASHED -> ERROR at the retry limit. The failure's own audit row says so (these details)."""
    if bot.status != Status.CRASHED or bot.start_failures < settings.BOT_MAX_START_RETRIES:
        return {}
    bot.status = Status.ERROR
    bot.next_start_at = None
    return {"status": Status.ERROR.value, "gave_up_after": bot.start_failures}


def _schedule_retry(bot: Bot) -> None:
    """A crashed bot is looked at again when its backoff is over."""
    if bot.status != Status.CRASHED:
        return
    delay = (bot.next_start_at - timezone.now()).total_seconds()
    transaction.on_commit(
        lambda: dispatch.reconcile_soon(bot, queue=dispatch.SHARED_QUEUE, countdown=max(delay, 0), from_loop=True)
    )


# --- adopt and crash --------------------------------------------------------------------
def adopt(bot_id: int, pid: int) -> str:
    """A STARTING bot whose start task was lost but whose runner is healthy becomes RUNNING."""
    with transaction.atomic():
        bot = locked(bot_id)
        if bot is None or bot.status != Status.STARTING or bot.pid != pid:
            return "superseded"
        bot.status = Status.RUNNING
        bot.started_at = timezone.now()
        bot.last_heartbeat = bot.started_at
        bot.last_error = ""
        bot.save(update_fields=[*PROCESS_FIELDS, "last_error"])
        record(bot, Action.BOT_ADOPTED, details={"pid": pid, "port": bot.port})
    return "adopted"


def mark_crashed(bot_id: int, pid: int | None, reason: str) -> str:
    """RUNNING -> CRASHED (process gone or heartbeat stale); the restart follows the backoff."""
    with transaction.atomic():
        bot = locked(bot_id)
        if bot is None or bot.status != Status.RUNNING or bot.pid != pid:
            return "superseded"
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
        _count_failure(bot)
        gave_up = _give_up_at_limit(bot)
        bot.last_error = redact(reason)
        bot.save(update_fields=[*PROCESS_FIELDS, "last_error", "start_failures", "next_start_at"])
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
    return "crashed"


def fail_interrupted_start(bot: Bot) -> str:
    """A start whose worker was lost: kill whatever it left, count it as a failed start."""
    _fail_start(bot.pk, bot.pid, "start interrupted: the worker starting it was lost", kill=True)
    kill_strays(bot.pk)
    return "error"


def kill_strays(bot_id: int) -> list[int]:
    """Kill this host's runners of the bot that its row does not own: never two processes of one bot.

    Decided under the row lock on a fresh read, so a runner spawned by a start that claimed
    the bot after our caller looked at it is never mistaken for a stray.
    """
    if not runner_pids(bot_id):
        return []
    with transaction.atomic():
        bot = locked(bot_id)
        if bot is not None and bot.status == Status.STARTING and bot.pid is None:
            return []  # a spawn is in flight; its start task records the pid
        owns = bot is not None and bot.status in PROCESS_STATES and bot.host == settings.HOSTNAME
        keep = bot.pid if owns else None
        # Listed again under the lock: a concurrent sweep may have killed (and audited) some.
        killed = [pid for pid in runner_pids(bot_id) if pid != keep]
        for pid in killed:
            terminate(pid, 0)
            reason = (
                f"the bot's process is {keep}"
                if keep
                else f"the bot has no process here ({bot.status if bot else 'gone'})"
            )
            record_kill(bot, bot_id, pid, Action.BOT_STRAY_KILLED, reason)
    return killed


# --- stop -------------------------------------------------------------------------------
def stop_bot(bot_id: int, *, expected_pid: int | None = None, actor: str | None = None) -> str:
    """Stop the bot's process (SIGTERM, grace, SIGKILL of the group) and mark it stopped.

    A bot an operator deleted (delete_requested) is deleted once stopped.
    """
    reap_children()
    with transaction.atomic():
        bot = locked(bot_id)
        if bot is None:
            return "gone"
        if expected_pid is not None and bot.pid != expected_pid:
            return "superseded"
        pid, port = bot.pid, bot.port
        if bot.status not in PROCESS_STATES or pid is None:
            # No process to signal (a start not yet spawned aborts itself when it sees this).
            _mark_stopped(bot, pid, port, killed=False, actor=actor)
            return "stopped"
        bot.status = Status.STOPPING
        bot.save(update_fields=["status", "updated_at"])
    killed = terminate(pid, settings.BOT_STOP_GRACE) if is_runner(pid, bot_id) else False
    kill_strays(bot_id)
    with transaction.atomic():
        bot = locked(bot_id)
        if bot is None:
            return "gone"
        if bot.status == Status.STOPPING and bot.pid == pid:
            _mark_stopped(bot, pid, port, killed=killed, actor=actor)
        elif bot.delete_requested:
            _delete(bot, actor)
    return "stopped"


def _mark_stopped(bot: Bot, pid: int | None, port: int | None, *, killed: bool, actor: str | None):
    if bot.status != Status.STOPPED or bot.pid or bot.port:
        clear_process(bot)
        bot.status = Status.STOPPED
        bot.next_start_at = None
        bot.save(update_fields=[*PROCESS_FIELDS, "next_start_at"])
        details = {"pid": pid, "port": port, "killed": killed}
        record(bot, Action.BOT_STOPPED, actor=actor or "reconcile", details=details)
    if bot.delete_requested:
        _delete(bot, actor)


def _delete(bot: Bot, actor: str | None) -> None:
    record(bot, Action.BOT_DELETED, actor=actor or "reconcile", details={"bot_id": bot.pk})
    bot.delete()


def settle_stopped(bot_id: int) -> str:
    """Desired stopped, no process (crashed or error): the observed status becomes stopped."""
    with transaction.atomic():
        bot = locked(bot_id)
        if (
            bot is None
            or bot.desired_state != DesiredState.STOPPED
            or bot.status
            not in (
                Status.CRASHED,
                Status.ERROR,
            )
        ):
            return "noop"
        _mark_stopped(bot, None, None, killed=False, actor=None)
    return "stopped"


def reset_failures_if_healthy(bot: Bot) -> None:
    """After BOT_BACKOFF_RESET seconds of health, the next crash starts the backoff afresh."""
    healthy_for = timedelta(seconds=settings.BOT_BACKOFF_RESET)
    if bot.start_failures and bot.started_at and timezone.now() - bot.started_at >= healthy_for:
        Bot.objects.filter(pk=bot.pk, pid=bot.pid, status=Status.RUNNING).update(start_failures=0)


def healthy_runner(bot: Bot) -> bool:
    body = health(bot.port, timeout=1.0) if bot.port else None
    return bool(body) and body.get("bot_id") == bot.pk and body.get("pid") == bot.pid


def restart_bot(bot_id: int, pid: int | None) -> str:
    """An operator's restart: stop the process that ran when it was asked, then start anew."""
    bot = Bot.objects.filter(pk=bot_id).first()
    if bot is None:
        return "gone"
    if dispatch.owned_elsewhere(bot):
        dispatch.send("bots.tasks.restart_bot", [bot_id, pid], dispatch.queue_for(bot))
        return "rerouted"
    if pid and bot.status == Status.RUNNING and bot.pid == pid:
        stop_bot(bot_id, expected_pid=pid)
        return start_bot(bot_id, reason="restart")
    # Done already (a redelivered task) or not running any more: start it if it is due.
    return start_bot(bot_id)
