"""The runbooks' remedies, each one audited with who did it and how much it touched.

Called by the management commands and the admin Operations page; `user`/`actor`/`ip`
say who acted (a user from the admin, "cli:<os user>" from the command line).
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from bots import lifecycle
from bots.models import Bot, DesiredState
from deia.audit import audit
from deia.audit_actions import Action
from deia.models import RuntimeFlag


class RemediationError(Exception):
    """Refused: bad input or nothing to act on. The message is the one line to show."""


def _who(user, actor: str | None) -> str:
    if actor:
        return actor
    return user.get_username() if user is not None else "anonymous"


def check_threshold(value: float, option: str) -> float:
    """A threshold from an operator: a finite number, 0 or more (nan and inf pass float())."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise RemediationError(f"{option} must be a number, 0 or more (got {value})")
    return value


def _require_postgres() -> None:
    if not settings.DATABASE_IS_POSTGRES:
        raise RemediationError("this remedy needs PostgreSQL; this installation uses SQLite")


# --- database sessions ----------------------------------------------------------------
# Which sessions may be ended: the listing and the kill both apply all of it.
IDLE_FROM_WHERE = """
FROM pg_stat_activity a JOIN pg_roles r ON r.rolname = a.usename
WHERE a.datname = current_database() AND a.state = 'idle' AND a.pid <> pg_backend_pid()
  AND NOT r.rolsuper AND a.state_change < now() - make_interval(secs => %s)
"""
IDLE_SESSIONS = f"""
SELECT a.pid, a.usename, a.application_name, host(a.client_addr), a.state_change,
       extract(epoch FROM now() - a.state_change)::float
{IDLE_FROM_WHERE}
ORDER BY a.state_change
"""  # noqa: S608 - constant fragments; values are parameters
# The kill re-checks every condition in the statement that kills: a listed session that
# has since woken up (and maybe gone idle again, with a fresh state_change) is spared.
TERMINATE_IDLE = f"""
SELECT a.pid, pg_terminate_backend(a.pid)
{IDLE_FROM_WHERE}
  AND a.pid = ANY(%s)
"""


def idle_connections(older_than_seconds: float) -> list[dict[str, Any]]:
    """Idle sessions of this application's database only: never another database's,
    never a superuser's, never our own."""
    _require_postgres()
    with connection.cursor() as cursor:
        cursor.execute(IDLE_SESSIONS, [older_than_seconds])
        return [
            {"pid": pid, "user": user, "application": app, "client": client, "idle_seconds": round(idle, 1)}
            for pid, user, app, client, _since, idle in cursor.fetchall()
        ]


def terminate_idle_connections(
    older_than_minutes: float | None = None, *, dry_run: bool = False, user=None, actor=None, ip=None
) -> dict[str, Any]:
    minutes = settings.IDLE_CONNECTION_MINUTES if older_than_minutes is None else older_than_minutes
    minutes = check_threshold(minutes, "--older-than-minutes")
    sessions = idle_connections(minutes * 60)
    result = {
        "older_than_minutes": minutes,
        "found": len(sessions),
        "terminated": [],
        "spared": [],
        "sessions": sessions,
    }
    if dry_run or not sessions:
        return result
    with transaction.atomic(), connection.cursor() as cursor:
        # pg_stat_activity is read once per transaction and then cached: read it afresh.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(TERMINATE_IDLE, [minutes * 60, [session["pid"] for session in sessions]])
        result["terminated"] = sorted(pid for pid, ended in cursor.fetchall() if ended)
        result["spared"] = sorted({session["pid"] for session in sessions} - set(result["terminated"]))
        audit(
            Action.OPS_TERMINATE_IDLE,
            user=user,
            actor=_who(user, actor),
            ip=ip,
            target=connection.settings_dict["NAME"],
            details={k: result[k] for k in ("older_than_minutes", "found", "terminated", "spared")},
        )
    return result


QUERY_OF = """
SELECT pid, usename, application_name, state, extract(epoch FROM now() - query_start)::float, left(query, 2000)
FROM pg_stat_activity
WHERE pid = %s AND datname = current_database() AND pid <> pg_backend_pid()
"""


def show_query(pid: int) -> dict[str, Any]:
    """The query a backend of this database is running; RemediationError if there is none."""
    _require_postgres()
    with connection.cursor() as cursor:
        cursor.execute(QUERY_OF, [pid])
        row = cursor.fetchone()
    if row is None:
        raise RemediationError(f"no session with pid {pid} in this application's database")
    pid, user, app, state, seconds, query = row
    return {
        "pid": pid,
        "user": user,
        "application": app,
        "state": state,
        "seconds": round(seconds or 0, 1),
        "query": query,
    }


def cancel_query(pid: int, *, min_seconds: float | None = None, user=None, actor=None, ip=None) -> dict[str, Any]:
    """pg_cancel_backend a query of this database that has run longer than the threshold."""
    limit = check_threshold(settings.SLOW_QUERY_SECONDS if min_seconds is None else min_seconds, "--min-seconds")
    query = show_query(pid)
    if query["state"] != "active":
        raise RemediationError(f"pid {pid} is {query['state']}, not running a query")
    if query["seconds"] < limit:
        raise RemediationError(f"pid {pid} has run {query['seconds']:g} s, under the {limit:g} s threshold")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_cancel_backend(%s)", [pid])
        cancelled = bool(cursor.fetchone()[0])
        audit(
            Action.OPS_CANCEL_QUERY,
            user=user,
            actor=_who(user, actor),
            ip=ip,
            target=str(pid),
            details={**query, "query": query["query"][:500], "cancelled": cancelled},
        )
    return {**query, "cancelled": cancelled}


# --- cache ------------------------------------------------------------------------------
def clear_cache(*, user=None, actor=None, ip=None) -> int:
    """Delete the application's cache keys. On Redis only Django's keys: the Celery broker
    may share the database, and FLUSHDB would drop queued bot starts with the cache."""
    if hasattr(cache, "delete_pattern"):
        removed = cache.delete_pattern("*")
    else:
        cache.clear()
        removed = -1  # local-memory cache: no count
    with transaction.atomic():
        who = _who(user, actor)
        audit(Action.OPS_CLEAR_CACHE, user=user, actor=who, ip=ip, target="cache", details={"keys": removed})
    return removed


# --- bots -------------------------------------------------------------------------------
def least_used_running(since_minutes: int = 60):
    """Running bots, least used first: fewest messages in the last hour, then newest start."""
    since = timezone.now() - timedelta(minutes=since_minutes)
    return (
        Bot.objects.with_process()
        .filter(desired_state=DesiredState.RUNNING)
        .annotate(recent_messages=Count("messages", filter=Q(messages__created_at__gte=since)))
        .order_by("recent_messages", "-started_at", "pk")
    )


class Stopped(list):
    """The bots stop_least_used stopped; .skipped names those gone before their turn."""

    def __init__(self, running_before: int):
        super().__init__()
        self.running_before = running_before
        self.skipped: list[str] = []


def stop_least_used(keep: int, *, user=None, actor=None, ip=None) -> Stopped:
    """Stop the least-used running bots until `keep` remain (runbook 2, option 3).

    A bot deleted after the listing is skipped and reported. The summary row is written
    whatever happens, so the bots already stopped are never left without it.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise RemediationError("--keep must be a whole number, 0 or more")
    who = _who(user, actor)
    running = list(least_used_running())
    victims = running[: max(0, len(running) - keep)]
    stopped, done, error = Stopped(len(running)), [], ""
    try:
        for bot in victims:
            try:
                stopped.append(lifecycle.request_stop(bot, user=user, actor=who, ip=ip))
                done.append({"bot": bot.slug, "messages_last_hour": bot.recent_messages})
            except Bot.DoesNotExist:
                stopped.skipped.append(bot.slug)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        details = {"keep": keep, "running_before": len(running), "stopped": done, "skipped_deleted": stopped.skipped}
        with transaction.atomic():
            audit(
                Action.OPS_STOP_LEAST_USED,
                user=user,
                actor=who,
                ip=ip,
                target=f"keep {keep}",
                details={**details, "error": error} if error else details,
            )
    return stopped


# --- freeze -----------------------------------------------------------------------------
def _set_freeze(enabled: bool, *, user, actor, ip) -> bool:
    """Returns False when the flag already had that value (nothing changed, nothing audited)."""
    who = _who(user, actor)
    with transaction.atomic():
        flag, _ = RuntimeFlag.objects.select_for_update().get_or_create(name=RuntimeFlag.FREEZE_STARTS)
        if flag.enabled == enabled:
            return False
        flag.enabled, flag.updated_by = enabled, who
        flag.save()
        action = Action.OPS_FREEZE_STARTS if enabled else Action.OPS_UNFREEZE_STARTS
        audit(action, user=user, actor=who, ip=ip, target=RuntimeFlag.FREEZE_STARTS, details={"enabled": enabled})
    return True


def freeze_starts(*, user=None, actor=None, ip=None) -> bool:
    """Refuse new bot starts from now on (MAX_BOTS=0 without a restart); running bots stay."""
    return _set_freeze(True, user=user, actor=actor, ip=ip)


def unfreeze_starts(*, user=None, actor=None, ip=None) -> bool:
    return _set_freeze(False, user=user, actor=actor, ip=ip)
