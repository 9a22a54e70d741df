"""A bot's admin page: its live status (the JSON the page polls), its buttons, its audit trail.

The page (bots/admin.py, templates/admin/bots/bot/change_form.html) polls `live_status`
every few seconds, so it is one query for the bot on top of the admin's own checks. The
Start, Stop and Restart buttons call the lifecycle's operator requests, as the list's
actions do; the test chat goes through the API's chat endpoint (bots.chat_api) with the
admin's session and CSRF token.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.timesince import timesince

from bots import lifecycle
from bots.models import Bot, Status
from bots.serializers import BotSerializer
from deia.audit_actions import Severity
from deia.models import AuditLog

# The page's buttons: verb -> the lifecycle's operator request (the list actions' own).
OPERATE_REQUESTS: dict[str, Callable[..., Bot]] = {
    "start": lifecycle.request_start,
    "stop": lifecycle.request_stop,
    "restart": lifecycle.request_restart,
}
# The audit permission: who may read the audit log may read a bot's trail on its page.
VIEW_AUDIT = "deia.view_auditlog"
RECENT_AUDIT = 20
RECENT_ERRORS = 10


def live_status(bot: Bot) -> dict[str, Any]:
    """The bot as the API shows it (BotSerializer), plus what the page says in words, and
    `chat_ready` when a chat can go to it. Needs the bot's team loaded (select_related)."""
    uptime = bot.uptime
    return {
        **BotSerializer(bot).data,
        "status_display": bot.get_status_display(),
        "uptime": timesince(bot.started_at) if uptime is not None else "",
        "chat_ready": bot.status == Status.RUNNING and bool(bot.port),
    }


def bot_audit_rows(bot: Bot) -> QuerySet[AuditLog]:
    """The bot's audit rows, newest first: the lifecycle's and operators' (target = its slug)
    and its admin edits (target "bots.bot:<id> <name>", deia.admin_audit). Served by
    audit_target_idx."""
    rows = AuditLog.objects.filter(Q(target=bot.slug) | Q(target__startswith=f"bots.bot:{bot.pk} "))
    return rows.order_by("-created_at", "-id")


def _shown(rows: QuerySet[AuditLog]) -> list[AuditLog]:
    """The rows, each with `details_json`: its details as the audit log's own page shows them."""
    rows = list(rows)
    for row in rows:
        row.details_json = json.dumps(row.details, sort_keys=True)
    return rows


def audit_trail(bot: Bot) -> list[AuditLog]:
    return _shown(bot_audit_rows(bot)[:RECENT_AUDIT])


def recent_errors(bot: Bot) -> list[AuditLog]:
    """Failed starts, crashes, refusals: the bot's audit rows that are not plain info."""
    return _shown(bot_audit_rows(bot).exclude(severity=Severity.INFO)[:RECENT_ERRORS])
