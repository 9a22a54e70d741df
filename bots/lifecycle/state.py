"""Shared pieces of the transitions: locks, backoff, limits, the audit-and-log record."""

from __future__ import annotations

import logging
import zlib
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from bots.lifecycle.machine import STARTABLE
from bots.models import PROCESS_FIELDS, Bot, DesiredState, Status
from deia.audit import audit
from deia.audit_actions import Action
from deia.flags import starts_frozen
from deia.models import AuditLog

log = logging.getLogger("deia.lifecycle")

# The actor of the lifecycle's own transitions (reconcile loop, start/stop tasks).
SYSTEM_ACTOR = "reconcile"
# A start not finished this long after its deadline was interrupted (its worker died).
START_GRACE = 5.0
# Any constant shared by every process: serialises the MAX_BOTS count with the claims.
_FLEET_LOCK_KEY = 0x0DE1A_B075
# Class of the per-host advisory lock that serialises killing a host's orphan runners.
_ORPHAN_LOCK_CLASS = 0x0DE1A


class StartRefused(Exception):
    """A start refused by MAX_BOTS or the run-time freeze; str() is the operator's message."""


def backoff(failures: int) -> float:
    """Seconds to wait before start attempt number failures+1: base, 2*base, 4*base ... cap."""
    if failures <= 0:
        return 0.0
    return min(settings.BOT_BACKOFF_BASE * 2 ** min(failures - 1, 62), settings.BOT_BACKOFF_CAP)


def fleet_lock() -> None:
    """Serialise decisions that count the fleet (limits, ports) across processes and hosts.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: transactions are IMMEDIATE,
    so the write lock taken at BEGIN already serialises them.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_FLEET_LOCK_KEY])


def host_lock(host: str) -> None:
    """Serialise one host's orphan sweeps (PostgreSQL; SQLite serialises every transaction)."""
    if connection.vendor == "postgresql":
        key = zlib.crc32(host.encode()) - 2**31  # the two-key form takes signed 32-bit ints
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_ORPHAN_LOCK_CLASS, key])


def lock_bot(bot_id: int) -> Bot | None:
    """Lock the bot's row until the transaction ends and read it afresh; None if it is gone."""
    return Bot.objects.select_for_update().filter(pk=bot_id).first()


def record(
    bot: Bot,
    action: str,
    *,
    actor: str | None = SYSTEM_ACTOR,
    user=None,
    ip: str | None = None,
    details: dict | None = None,
    level: int = logging.INFO,
) -> None:
    """One audit row and one JSON log line for one transition (never message content)."""
    details = {"host": settings.HOSTNAME, **(details or {})}
    if user is not None:
        actor = None
    audit(action, actor=actor, user=user, ip=ip, target=bot.slug, details=details)
    log.log(
        level,
        action,
        extra={"bot": bot.slug, "bot_id": bot.pk, "action": action, "pid": bot.pid, "port": bot.port, **details},
    )


def record_kill(bot: Bot | None, bot_id: int, pid: int, action: str, reason: str) -> None:
    """One audit row for a runner the lifecycle killed on its own (bot.stray_killed, bot.orphan_killed)."""
    details = {"host": settings.HOSTNAME, "bot_id": bot_id, "pid": pid, "reason": reason}
    if bot is not None:
        target = bot.slug
    else:  # its row is gone: name it as its deletion did
        deleted = AuditLog.objects.filter(action=Action.BOT_DELETED, details__bot_id=bot_id).order_by("-id").first()
        target = deleted.target if deleted else f"bot #{bot_id}"
    audit(action, actor=SYSTEM_ACTOR, target=target, details=details)
    log.warning(action, extra={"bot": target, "action": action, **details})


def freeze_refusal() -> str | None:
    """Why no bot may be launched at all now (the run-time freeze or MAX_BOTS=0), or None."""
    if starts_frozen():
        return "New bot starts are frozen (freeze_starts is on); no bot was started."
    if settings.MAX_BOTS == 0:
        return "New bot starts are disabled (MAX_BOTS=0); no bot was started."
    return None


def start_refusal(bot: Bot) -> str | None:
    """Why a new start of `bot` is not allowed now (MAX_BOTS, the freeze), or None."""
    frozen = freeze_refusal()
    if frozen:
        return frozen
    wanted = Bot.objects.desired_running().exclude(pk=bot.pk).exclude(status=Status.ERROR).count()
    if wanted >= settings.MAX_BOTS:
        return f"At most {settings.MAX_BOTS} bots may run (MAX_BOTS) and {wanted} already run or are starting."
    return None


def capacity_refusal(bot: Bot) -> str | None:
    """Checked by the worker before spawning: the processes actually alive, not the wishes."""
    if starts_frozen():
        return "waiting: new bot starts are frozen"
    if settings.MAX_BOTS == 0:
        return "waiting: MAX_BOTS=0"
    alive = Bot.objects.with_process().exclude(pk=bot.pk).count()
    if alive >= settings.MAX_BOTS:
        return f"waiting: MAX_BOTS={settings.MAX_BOTS} bots already run"
    return None


def start_due(bot: Bot, now=None, *, past_hold: bool = False) -> bool:
    """Whether the bot is to be started now; past_hold ignores next_start_at (a restart's own hold)."""
    now = now or timezone.now()
    if bot.desired_state != DesiredState.RUNNING or bot.status not in STARTABLE:
        return False
    if bot.status == Status.ERROR and bot.start_failures >= settings.BOT_MAX_START_RETRIES:
        return False
    return past_hold or bot.next_start_at is None or bot.next_start_at <= now


def start_overdue(bot: Bot, now=None) -> bool:
    """A STARTING bot whose start should have finished long ago (its worker was lost)."""
    now = now or timezone.now()
    if bot.started_at is None:
        return True
    return now - bot.started_at > timedelta(seconds=settings.BOT_START_TIMEOUT + START_GRACE)


def heartbeat_stale(bot: Bot, now=None) -> bool:
    now = now or timezone.now()
    reference = bot.last_heartbeat or bot.started_at
    return reference is None or now - reference > timedelta(seconds=settings.BOT_HEARTBEAT_STALE)


def taken_ports(exclude: int | None = None) -> set[int]:
    """Ports bots hold: their process's, and a drain's handover runner's (pick under fleet_lock)."""
    bots = Bot.objects.exclude(pk=exclude) if exclude else Bot.objects.all()
    taken = set(bots.exclude(port=None).values_list("port", flat=True))
    taken |= {h["port"] for h in Bot.objects.exclude(handover={}).values_list("handover", flat=True) if h.get("port")}
    return taken


def clear_process(bot: Bot) -> None:
    """Forget the process (in memory; the transition saves PROCESS_FIELDS with the status)."""
    for name in PROCESS_FIELDS:
        setattr(bot, name, Bot._meta.get_field(name).get_default())
