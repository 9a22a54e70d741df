"""The audit vocabulary: every action an audit row may have, its severity and its meaning.

Declared once here; audit() refuses any other action (ValueError), stores the severity
with the row, and docs/OBSERVABILITY.md's table is checked against this module by a test.

Two kinds of declaration:
- `Action`: the fixed actions, one member each (name, severity, one-line description).
- `Family`: actions named after a subject declared elsewhere: a maintenance job (declared
  by the job registry through declare_job) or a model changed in the admin.

Failures have severity `error` and, only they, "error" in their name, so the operations
guide's `WHERE action LIKE '%error%'` and diagnose's `severity = 'error'` agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum

from django.apps import apps
from django.db import models


class Severity(models.TextChoices):
    INFO = "info"  # a change someone or something meant to make
    WARNING = "warning"  # refused, denied or cleaned up after: worth a look when it repeats
    ERROR = "error"  # a failure: counted by diagnose (audit_errors)


class Action(StrEnum):
    """Every fixed audit action. `Action.BOT_START == "bot.start"`: callers may pass either."""

    severity: Severity
    description: str

    def __new__(cls, value: str, severity: Severity, description: str) -> Action:
        member = str.__new__(cls, value)
        member._value_ = value
        member.severity = severity
        member.description = description
        return member

    # Bots: what operators asked for (API, admin, setup, remedies).
    BOT_CREATE = "bot.create", Severity.INFO, "A bot was created (manage.py setup or the admin)."
    BOT_UPDATE = "bot.update", Severity.INFO, "A bot's configuration was edited in the admin (old and new values)."
    BOT_START = "bot.start", Severity.INFO, "Someone asked a bot to run."
    BOT_STOP = "bot.stop", Severity.INFO, "Someone asked a bot to stop."
    BOT_RESTART = "bot.restart", Severity.INFO, "Someone asked a running bot to restart."
    BOT_DELETE = "bot.delete", Severity.INFO, "Someone asked for a bot's deletion; the lifecycle stops it first."
    BOT_START_REFUSED = "bot.start_refused", Severity.WARNING, "A start refused by MAX_BOTS or the run-time freeze."
    BOT_START_DENIED = "bot.start_denied", Severity.WARNING, "A start refused: the user lacks bots.operate_bot."
    BOT_STOP_DENIED = "bot.stop_denied", Severity.WARNING, "A stop refused: the user lacks bots.operate_bot."
    BOT_RESTART_DENIED = "bot.restart_denied", Severity.WARNING, "A restart refused: the user lacks bots.operate_bot."
    # Bots: what the lifecycle did (actor reconcile).
    BOT_STARTED = "bot.started", Severity.INFO, "A bot's runner answered its health check: running."
    BOT_RESTARTED = "bot.restarted", Severity.INFO, "A crashed bot was started again and runs."
    BOT_ADOPTED = "bot.adopted", Severity.INFO, "A start whose task was lost found its runner healthy: running."
    BOT_STOPPED = "bot.stopped", Severity.INFO, "A bot's runner was stopped."
    BOT_DELETED = "bot.deleted", Severity.INFO, "A bot's row was deleted after its runner stopped."
    BOT_START_ERROR = "bot.start_error", Severity.ERROR, "A start failed; retried after backoff, or given up."
    BOT_CRASH = "bot.crash", Severity.WARNING, "A running bot's process died or hung; restarted after backoff."
    BOT_STRAY_KILLED = "bot.stray_killed", Severity.WARNING, "A runner of a bot that should not have one was killed."
    BOT_ORPHAN_KILLED = "bot.orphan_killed", Severity.WARNING, "A runner that no bot row claims was killed."
    BOT_RESCHEDULED = "bot.rescheduled", Severity.INFO, "A bot was moved to another host (from, to, reason, gen.)."
    BOT_FENCED = "bot.fenced", Severity.WARNING, "A runner of a bot placed elsewhere or of an old generation: killed."
    # Hosts (bots workers' machines).
    HOST_JOINED = "host.joined", Severity.INFO, "A bots worker's host appeared for the first time."
    HOST_LOST = "host.lost", Severity.WARNING, "A host was silent past HOST_LEASE_SECONDS: its bots go elsewhere."
    HOST_REJOINED = "host.rejoined", Severity.INFO, "A lost host's worker came back, fenced its runners and is alive."
    HOST_DRAIN_REQUESTED = "host.drain_requested", Severity.INFO, "Someone asked for a host's bots to move off it."
    HOST_DRAINED = "host.drained", Severity.INFO, "The last bot of a draining host moved off it."
    HOST_UNDRAINED = "host.undrained", Severity.INFO, "A drained host takes new bots again."
    HOST_FORGOTTEN = "host.forgotten", Severity.INFO, "A lost host with no bots was removed from the list."
    # Sign-in and API tokens.
    AUTH_LOGIN = "auth.login", Severity.INFO, "An admin sign-in."
    AUTH_LOGOUT = "auth.logout", Severity.INFO, "An admin sign-out."
    AUTH_LOGIN_FAILED = "auth.login_failed", Severity.WARNING, "A failed sign-in (counted towards the lockout)."
    AUTH_LOCKOUT = "auth.lockout", Severity.WARNING, "Too many failed sign-ins: the user and address are locked out."
    TOKEN_CREATE = "token.create", Severity.INFO, "An API token was issued (never its key)."
    TOKEN_REVOKE = "token.revoke", Severity.INFO, "An API token was revoked."
    AUDIT_EXPORT = "audit.export", Severity.INFO, "The audit log was exported as CSV (the date range and filters)."
    # Operations: remedies, schedules, restores, maintenance requests.
    OPS_TERMINATE_IDLE = "ops.terminate_idle_connections", Severity.INFO, "Idle database sessions were terminated."
    OPS_CANCEL_QUERY = "ops.cancel_query", Severity.INFO, "A long-running query was cancelled."
    OPS_CLEAR_CACHE = "ops.clear_cache", Severity.INFO, "Django's cache keys were deleted."
    OPS_STOP_LEAST_USED = "ops.stop_least_used", Severity.INFO, "The least-used running bots were stopped."
    OPS_FREEZE_STARTS = "ops.freeze_starts", Severity.INFO, "New bot starts were frozen at run time."
    OPS_UNFREEZE_STARTS = "ops.unfreeze_starts", Severity.INFO, "New bot starts were allowed again."
    OPS_RESTORE = "ops.restore", Severity.INFO, "The database was restored from a backup."
    OPS_SCHEDULES_INSTALL = "ops.schedules_install", Severity.INFO, "Beat's maintenance schedules were installed."
    MAINTENANCE_ENQUEUE = "maintenance.enqueue", Severity.INFO, "An operator queued a maintenance job."
    # Chat history partitions (PostgreSQL): one row per month's partition made or dropped.
    CHAT_PARTITION_CREATE = (
        "chat.partition_create",
        Severity.INFO,
        "A month's partition of chat_messages was created (rows waiting in the default partition moved in).",
    )
    CHAT_PARTITION_DROP = (
        "chat.partition_drop",
        Severity.INFO,
        "An expired month's partition of chat_messages was dropped by retention (its row count).",
    )


# The subjects of the maintenance families: the job registry declares each job here.
_JOBS: set[str] = set()


def declare_job(name: str) -> None:
    """Declare maintenance.<name> and maintenance.<name>_error (called by the job registry)."""
    _JOBS.add(name)


# Models whose admin changes use their domain's own vocabulary (bot.create, not
# bots.bot.create): the admin's generic verbs are spelled with this name instead.
ADMIN_SUBJECTS = {"bots.bot": "bot"}


def admin_subject(label_lower: str) -> str:
    """The name an admin change of a model is audited under: bot, auth.user, ..."""
    return ADMIN_SUBJECTS.get(label_lower, label_lower)


def _model_labels() -> set[str]:
    return {model._meta.label_lower for model in apps.get_models()} - ADMIN_SUBJECTS.keys()


@dataclass(frozen=True)
class Family:
    """Actions named after a subject: `pattern` holds one placeholder, e.g. maintenance.{job}."""

    pattern: str
    severity: Severity
    description: str
    subjects: Callable[[], Collection[str]]

    def subject(self, action: str) -> str | None:
        """The declared subject `action` names through this family, or None."""
        head, tail = re.split(r"\{\w+\}", self.pattern)
        if not (action.startswith(head) and action.endswith(tail)) or len(action) <= len(head) + len(tail):
            return None
        subject = action[len(head) : len(action) - len(tail)]
        return subject if subject in self.subjects() else None

    @property
    def shown(self) -> str:
        """The pattern as the docs write it: maintenance.<job>."""
        return re.sub(r"\{(\w+)\}", r"<\1>", self.pattern)


FAMILIES = (
    Family("maintenance.{job}", Severity.INFO, "A maintenance job finished and changed something.", lambda: _JOBS),
    Family("maintenance.{job}_error", Severity.ERROR, "A maintenance job failed (its run says why).", lambda: _JOBS),
    # The admin's generic verbs, for models without their own vocabulary (a bot has bot.*).
    Family(
        "{model}.create",
        Severity.INFO,
        "Added in the admin (auth.user also by setup); e.g. auth.user.create.",
        _model_labels,
    ),
    Family("{model}.update", Severity.INFO, "Edited in the admin (old and new values).", _model_labels),
    Family(
        "{model}.delete", Severity.INFO, "Deleted in the admin (a bot: bot.delete, by the lifecycle).", _model_labels
    ),
)


def severity_of(action: str) -> Severity:
    """The declared severity of `action`; ValueError if nothing declares it."""
    try:
        return Action(action).severity
    except ValueError:
        pass
    for family in FAMILIES:
        if family.subject(action) is not None:
            return family.severity
    raise ValueError(f"undeclared audit action {action!r}: declare it in deia/audit_actions.py")


def vocabulary() -> list[tuple[str, Severity, str]]:
    """(action or pattern, severity, description) for every declaration, as the docs list them."""
    fixed = [(str(action), action.severity, action.description) for action in Action]
    return fixed + [(family.shown, family.severity, family.description) for family in FAMILIES]
