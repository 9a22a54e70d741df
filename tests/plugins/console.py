"""Known data for the reports and the capacity page, shared by the integration and e2e suites:
a week (2026-W47) with known messages, crashes, backups, restore checks, database sizes and
a failed job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bots.models import Backend, Bot, ChatMessage, Role
from deia.models import AuditLog
from ops.console import samples
from ops.console.reports import Period
from ops.models import MaintenanceRun

WEEK = Period("weekly", datetime(2026, 11, 16).date(), datetime(2026, 11, 23).date())  # 2026-W47


def at(day: int, hour: int = 12) -> datetime:
    """A moment in November 2026, UTC."""
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def chat(bot: Bot, when: datetime, latency_ms: int, error: str = "") -> None:
    ChatMessage.objects.create(bot=bot, role=Role.USER, content="q", created_at=when)
    ChatMessage.objects.create(
        bot=bot,
        role=Role.ASSISTANT,
        content="" if error else "a",
        created_at=when + timedelta(seconds=1),
        latency_ms=latency_ms,
        error=error,
    )


def run(job: str, when: datetime, status: str = "ok", **details) -> MaintenanceRun:
    return MaintenanceRun.objects.create(
        job=job,
        status=status,
        started_at=when,
        finished_at=when + timedelta(minutes=1),
        summary=f"{job} {status}",
        details=details,
    )


@pytest.fixture
def known_week(db) -> dict:
    support = Bot.objects.create(name="Support", slug="support", backend=Backend.ECHO)
    sales = Bot.objects.create(name="Sales | EU", slug="sales", backend=Backend.ECHO)
    # support: 3 on Monday, 2 on Wednesday (one failed); sales: 1 on Friday, slow.
    for latency in (100, 200, 300):
        chat(support, at(16), latency)
    chat(support, at(18), 400)
    chat(support, at(18, 13), 50, error="LLM timed out")
    chat(sales, at(20), 900)
    chat(support, at(23), 100)  # the next week: not counted
    chat(support, at(15, 23), 100)  # the week before
    for action, target, day in [
        ("bot.crash", "support", 17),
        ("bot.crash", "support", 19),
        ("bot.restarted", "support", 17),
        ("bot.start_error", "sales", 21),
        ("bot.crash", "sales", 24),  # next week
    ]:
        AuditLog.objects.create(actor="reconcile", action=action, target=target, created_at=at(day))
    run("backup", at(17, 2), size=1000, file="db_1.dump")
    run("backup", at(19, 2), status="failed")
    run("backup", at(21, 2), size=1500, file="db_2.dump")
    run("verify_backup", at(20, 7), file="db_1.dump")
    run("db_report", at(9, 5), database_bytes=10 * 1048576)  # before the week: its start
    run("db_report", at(16, 5), database_bytes=12 * 1048576)
    run("vacuum", at(16, 5), status="failed")
    # The System Overview's own samples (hourly roll-ups): 990 of 1000 minutes healthy,
    # 2 errors in 1000 requests, every request within 100 ms; an unhealthy hour the week after.
    samples.upsert(
        [
            (at(17, 0), 3600, samples.HEALTH_MINUTES, "", 500),
            (at(17, 0), 3600, samples.HEALTH_OK, "", 500),
            (at(18, 0), 3600, samples.HEALTH_MINUTES, "", 500),
            (at(18, 0), 3600, samples.HEALTH_OK, "", 490),
            (at(18, 0), 3600, samples.REQUESTS, "", 1000),
            (at(18, 0), 3600, samples.ERRORS, "", 2),
            (at(18, 0), 3600, samples.LATENCY, "0.1", 1000),
            (at(24, 0), 3600, samples.HEALTH_MINUTES, "", 60),
            (at(24, 0), 3600, samples.HEALTH_OK, "", 0),
        ],
        add=False,
    )
    return {"support": support, "sales": sales}
