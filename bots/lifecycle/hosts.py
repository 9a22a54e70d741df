"""Hosts: each bots worker keeps its Host row alive; a silent one is lost; a lost one rejoins fenced.

The heartbeat is a thread of the worker's main process (started on worker_ready), not a
task: a task waits for a free pool process, and a pool busy with slow starts (or a backlog
in the host's queue) would let the lease lapse on a healthy host and move its bots for
nothing. The main process only consumes messages, so its thread beats on time whatever
the pool does. last_seen is the database's clock (Now()), so no host's clock matters.

Lost (HOST_LEASE_SECONDS without a heartbeat): any healthy host's reconcile_all marks it
(failover(), under fleet_lock), its bots with a process become `lost` and are placed
elsewhere (bots.lifecycle.placement). When its worker comes back it first kills every runner
it still has (none of them is current: nothing is placed on a lost host, and each claim
elsewhere bumped the bot's generation), then clears lost_at: rejoined, alive, no bots.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, close_old_connections, connection, transaction
from django.db.models.functions import Now
from django.utils import timezone

from bots import metrics
from bots.lifecycle.machine import Event, move
from bots.lifecycle.process import runner_pids, terminate
from bots.lifecycle.state import SYSTEM_ACTOR, backoff, fleet_lock, lock_bot, record, record_kill
from bots.lifecycle.template import code_version
from bots.models import PROCESS_STATES, Bot, DesiredState, Host, HostState, Status, db_now
from deia.audit import audit
from deia.audit_actions import Action

log = logging.getLogger("deia.lifecycle")


def lease() -> timedelta:
    return timedelta(seconds=settings.HOST_LEASE_SECONDS)


def version() -> str:
    return f"{settings.SPECTACULAR_SETTINGS['VERSION']}+{code_version()[:12]}"


# --- this host's heartbeat ----------------------------------------------------------------
def beat(ver: str = "") -> Host:
    """Upsert this host's row (last_seen = the database's now); the first one audits host.joined.

    A host found lost (its worker was away, or cut off) fences itself and rejoins first.
    """
    fields = {
        "address": settings.BOT_ADVERTISE_HOST,
        "capacity": settings.HOST_MAX_BOTS,
        "labels": settings.HOST_LABELS,
        "version": ver,
    }
    if not Host.objects.filter(name=settings.HOSTNAME).update(last_seen=Now(), **fields):
        try:
            with transaction.atomic():
                Host.objects.create(name=settings.HOSTNAME, last_seen=Now(), **fields)
                audit(Action.HOST_JOINED, actor=SYSTEM_ACTOR, target=settings.HOSTNAME, details=fields)
        except IntegrityError:  # another process of this host won the race
            Host.objects.filter(name=settings.HOSTNAME).update(last_seen=Now(), **fields)
    rejoin_if_lost()
    return Host.objects.get(name=settings.HOSTNAME)


def rejoin_if_lost() -> bool:
    """If this host was declared lost: kill every runner it still has (bot.fenced), then rejoin.

    True if it rejoined now. Nothing is placed on a lost host, so none of its runners is
    current; killing them before lost_at is cleared means no placement can race with it.
    """
    if not Host.objects.filter(name=settings.HOSTNAME, lost_at__isnull=False).exists():
        return False
    fenced = []
    for pid, bot_id in runner_pids().items():
        terminate(pid, 0)
        bot = Bot.objects.filter(pk=bot_id).first()
        reason = "its host was lost: the bot is placed elsewhere or has another generation"
        record_kill(bot, bot_id, pid, Action.BOT_FENCED, reason)
        fenced.append(pid)
    with transaction.atomic():
        if not Host.objects.filter(name=settings.HOSTNAME, lost_at__isnull=False).update(lost_at=None):
            return False
        # Bots it held that were not yet placed elsewhere are placed anew, never here by default.
        Bot.objects.filter(host=settings.HOSTNAME).exclude(status__in=[*PROCESS_STATES, Status.LOST]).update(host="")
        audit(Action.HOST_REJOINED, actor=SYSTEM_ACTOR, target=settings.HOSTNAME, details={"fenced": fenced})
    log.warning("host rejoined", extra={"host": settings.HOSTNAME, "fenced": fenced})
    return True


class Heartbeat:
    """The worker's heartbeat thread: beat() every HOST_HEARTBEAT_SECONDS until stopped."""

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="deia-host-heartbeat")
        self.version = version()

    def start(self) -> Heartbeat:
        beat(self.version)  # before the worker takes its first task
        connection.close()  # the main thread's; the thread keeps its own
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()

    def _loop(self) -> None:
        while not self.stopped.wait(settings.HOST_HEARTBEAT_SECONDS):
            try:
                close_old_connections()
                beat(self.version)
            except DatabaseError as exc:
                log.warning("host heartbeat failed", extra={"host": settings.HOSTNAME, "error": str(exc)})
            except Exception:
                log.exception("host heartbeat failed")
        connection.close()


# --- failover (reconcile_all, under fleet_lock) ----------------------------------------------
def mark_lost_hosts(now: datetime) -> list[str]:
    """Hosts silent past the lease get lost_at (host.lost, once); their bots with a process become lost.

    Called inside reconcile_all's transaction, after fleet_lock(). Returns the lost hosts' names.
    """
    silent = Host.objects.select_for_update().filter(lost_at__isnull=True, last_seen__lt=now - lease())
    # The host running this pass is alive whatever its row says (a worker back after a long
    # stop may reconcile before its first heartbeat): it never declares itself lost.
    for host in silent.exclude(name=settings.HOSTNAME):
        host.lost_at = now
        host.save(update_fields=["lost_at"])
        held = Bot.objects.filter(host=host.name).with_process().count()
        details = {"last_seen": host.last_seen.isoformat(), "bots": held, "lease_seconds": settings.HOST_LEASE_SECONDS}
        audit(Action.HOST_LOST, actor=SYSTEM_ACTOR, target=host.name, details=details)
        log.error("host lost", extra={"host": host.name, **details})
    lost = list(Host.objects.filter(lost_at__isnull=False).values_list("name", flat=True))
    for bot_id in Bot.objects.filter(host__in=lost).with_process().values_list("pk", flat=True):
        _mark_bot_lost(bot_id)
    # Starts placed on a lost host and not yet claimed there are placed anew.
    Bot.objects.filter(host__in=lost, status__in=[Status.STOPPED, Status.CRASHED, Status.ERROR]).update(host="")
    return lost


def _mark_bot_lost(bot_id: int) -> None:
    bot = lock_bot(bot_id)
    if bot is None or bot.status not in PROCESS_STATES:
        return
    # The same backoff as a crash: a bot that loses host after host does not hop at full speed.
    bot.start_failures += 1
    bot.next_start_at = timezone.now() + timedelta(seconds=backoff(bot.start_failures))
    if bot.desired_state == DesiredState.STOPPED:
        bot.next_start_at = None
    bot.last_error = f"host {bot.host} lost: no heartbeat for {settings.HOST_LEASE_SECONDS:g} s"
    # host, pid and port stay: where the process may still live (fenced by the generation).
    move(bot, Event.HOST_LOST, Status.LOST, ["start_failures", "next_start_at", "last_error"])
    record(bot, Action.BOT_CRASH, details={"pid": bot.pid, "port": bot.port, "reason": bot.last_error})
    metrics.CRASHES.inc()


# --- operators' verbs (admin actions, manage.py host) -----------------------------------------
class HostError(Exception):
    """A host verb refused; str() is the operator's one line."""


def _get(name: str) -> Host:
    host = Host.objects.select_for_update().filter(name=name).first()
    if host is None:
        known = ", ".join(Host.objects.values_list("name", flat=True)) or "none"
        raise HostError(f"no host named {name!r} (known: {known})")
    return host


def drain(name: str, *, actor: str | None = None, user=None, ip: str | None = None) -> bool:
    """Ask for a host's bots to move elsewhere; it takes no new placement. False if it already drains."""
    with transaction.atomic():
        host = _get(name)
        if host.draining:
            return False
        host.draining, host.draining_since = True, timezone.now()
        host.save(update_fields=["draining", "draining_since"])
        bots = Bot.objects.filter(host=name).exclude(status=Status.LOST).count()
        audit(Action.HOST_DRAIN_REQUESTED, actor=actor, user=user, ip=ip, target=name, details={"bots": bots})
    return True


def undrain(name: str, *, actor: str | None = None, user=None, ip: str | None = None) -> bool:
    """The host takes new bots again. False if it was not draining."""
    with transaction.atomic():
        host = _get(name)
        if not host.draining:
            return False
        host.draining, host.draining_since = False, None
        host.save(update_fields=["draining", "draining_since"])
        audit(Action.HOST_UNDRAINED, actor=actor, user=user, ip=ip, target=name, details={})
    return True


def forget(name: str, *, actor: str | None = None, user=None, ip: str | None = None) -> None:
    """Remove a lost host that holds no bot from the list (its worker would add it again)."""
    with transaction.atomic():
        fleet_lock()
        host = _get(name)
        state = host.state_at(db_now(), settings.HOST_LEASE_SECONDS)
        if state != HostState.LOST:
            raise HostError(f"host {name!r} is {state}: only a lost host can be forgotten")
        held = Bot.objects.filter(host=name).count()
        if held:
            raise HostError(f"host {name!r} still holds {held} bot(s): wait until they are placed elsewhere")
        host.delete()
        audit(Action.HOST_FORGOTTEN, actor=actor, user=user, ip=ip, target=name, details={})
