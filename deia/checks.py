"""System checks for settings that must agree with each other."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Warning, register

from deia.pooler import check_pooler


def bot_settings(app_configs, **kwargs):
    problems = []
    first, last = settings.BOT_PORT_RANGE
    if last - first + 1 < settings.MAX_BOTS:
        problems.append(
            Error(
                f"BOT_PORT_RANGE holds {last - first + 1} ports, fewer than MAX_BOTS={settings.MAX_BOTS}.",
                hint="Widen BOT_PORT_RANGE or lower MAX_BOTS.",
                id="deia.E001",
            )
        )
    if settings.BOT_HEARTBEAT_STALE <= 2 * settings.BOT_HEARTBEAT_INTERVAL:
        problems.append(
            Error(
                "BOT_HEARTBEAT_STALE must exceed twice BOT_HEARTBEAT_INTERVAL, or healthy bots look crashed.",
                id="deia.E002",
            )
        )
    if settings.BOT_BACKOFF_CAP < settings.BOT_BACKOFF_BASE:
        problems.append(Error("BOT_BACKOFF_CAP is below BOT_BACKOFF_BASE.", id="deia.E003"))
    if not settings.DEBUG and not settings.DATABASE_IS_POSTGRES and settings.SECURE_HTTPS:
        problems.append(
            Warning(
                "Production (SECURE_HTTPS) on SQLite: set DATABASE_URL to PostgreSQL.",
                id="deia.W001",
            )
        )
    return problems


def register_all() -> None:
    register(bot_settings)
    register(check_pooler)
