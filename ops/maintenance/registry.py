"""The maintenance jobs, each declared once.

A Job's name is the MaintenanceRun.job, the `task` label of the maintenance metrics, the
Celery task ops.tasks.<name> (ops.tasks registers one per job), the command
`manage.py maintenance <name>` (and `manage.py <name>`), the default schedule
"maintenance: <name>" (ops.schedules) and a button on the Operations page (ops.admin).
A new job is one entry here plus its function; a name, once scheduled, stays: the
periodic tasks in the database name the Celery task.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from deia.audit_actions import declare_job
from ops.console.reports import monthly_report, parse_month, parse_week, weekly_report
from ops.maintenance.backup import backup, verify_backup
from ops.maintenance.cache import redis_bgsave
from ops.maintenance.database import audit_retention, chat_partitions, db_report, purge_messages, vacuum
from ops.maintenance.files import cleanup_logs, rotate_backups
from ops.maintenance.report import health_report
from ops.maintenance.runs import TIME_LIMIT, Outcome


def existing_file(value: str) -> str:
    # A mistyped path is bad input, refused before a run is recorded; a file that is there
    # but is no good backup is a failed check, recorded and audited.
    if not Path(value).is_file():
        raise argparse.ArgumentTypeError(f"{value} does not exist or is not a file")
    return value


@dataclass(frozen=True)
class Argument:
    """An optional positional argument of the job's command, passed to the function as `dest`.

    Commands only: a task takes no arguments (a schedule could otherwise name a file).
    """

    dest: str
    metavar: str
    help: str
    type: Callable[[str], Any] = str

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(self.dest, metavar=self.metavar, nargs="?", type=self.type, help=self.help)


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[..., Outcome]
    cron: tuple[str, str, str, str]  # the default schedule, UTC: minute hour day_of_week day_of_month
    when: str  # the schedule in words
    description: str  # one line: the command's help, the Operations page
    queue: str = "maintenance"
    time_limit: float = TIME_LIMIT  # seconds
    # The default schedule is enabled exactly while this holds (checked at each install).
    enabled_if: Callable[[], bool] | None = None
    arguments: tuple[Argument, ...] = ()

    @property
    def task(self) -> str:
        return f"ops.tasks.{self.name}"

    @property
    def soft_time_limit(self) -> float:
        return self.time_limit - 60


def _chat_retention_set() -> bool:
    return bool(settings.CHAT_RETENTION_DAYS)


DAILY, WEEKLY, MONTHLY = ("*", "*"), ("1", "*"), ("*", "1")  # day_of_week, day_of_month

# In the Operations page's order. Times in UTC, spread so that no two heavy jobs overlap.
JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job(
            "backup",
            backup,
            ("30", "2", *DAILY),
            "daily 02:30",
            "Take a verified-checksum backup of the database into BACKUP_DIR (pg_dump custom format).",
        ),
        Job(
            "verify_backup",
            verify_backup,
            ("0", "7", *MONTHLY),
            "monthly, the 1st at 07:00",
            "Restore check: restore a backup (default: the newest) into a scratch database and compare row counts.",
            arguments=(Argument("path", "file", "backup file (default: the newest in BACKUP_DIR)", existing_file),),
        ),
        Job(
            "rotate_backups",
            rotate_backups,
            ("0", "4", *DAILY),
            "daily 04:00",
            "Delete backups older than BACKUP_RETENTION_DAYS (never the newest good one, never other files).",
        ),
        Job("vacuum", vacuum, ("0", "5", *WEEKLY), "weekly, Monday 05:00", "VACUUM (ANALYZE) the database."),
        Job(
            "db_report",
            db_report,
            ("30", "5", *WEEKLY),
            "weekly, Monday 05:30",
            "Record table sizes and index usage (readable in the admin's maintenance runs).",
        ),
        Job(
            "redis_bgsave",
            redis_bgsave,
            ("45", "5", *WEEKLY),
            "weekly, Monday 05:45",
            "BGSAVE Redis where it persists; reported as skipped where it does not.",
        ),
        Job(
            "cleanup_logs",
            cleanup_logs,
            ("15", "4", *DAILY),
            "daily 04:15",
            "Delete rotated logs (*.log.*) in LOG_DIR older than LOG_RETENTION_DAYS.",
        ),
        Job(
            "purge_messages",
            purge_messages,
            ("30", "3", *DAILY),
            "daily 03:30, when CHAT_RETENTION_DAYS is set",
            "Delete chat messages older than CHAT_RETENTION_DAYS: whole expired months' partitions on PostgreSQL, "
            "in batches on SQLite (skipped when unset).",
            enabled_if=_chat_retention_set,
        ),
        Job(
            "chat_partitions",
            chat_partitions,
            ("15", "3", *DAILY),
            "daily 03:15",
            "Create chat_messages' monthly partitions: this month and the next CHAT_PARTITIONS_AHEAD "
            "(PostgreSQL; skipped on SQLite).",
        ),
        Job(
            "audit_retention",
            audit_retention,
            ("45", "3", *DAILY),
            "daily 03:45",
            "Delete audit rows older than AUDIT_RETENTION_DAYS (400), in batches; the deletion is audited once.",
        ),
        Job(
            "health_report",
            health_report,
            ("0", "6", *DAILY),
            "daily 06:00",
            "Run diagnose's checks and record them as the daily health report.",
        ),
        Job(
            "weekly_report",
            weekly_report,
            ("30", "6", *WEEKLY),
            "weekly, Monday 06:30",
            "Make the operations report of the last whole week (or the ISO week named), kept in the admin, "
            "mailed to REPORT_EMAILS.",
            arguments=(
                Argument("period", "week", "the ISO week to report, e.g. 2026-W47 (default: last week)", parse_week),
            ),
        ),
        Job(
            "monthly_report",
            monthly_report,
            ("30", "7", *MONTHLY),
            "monthly, the 1st at 07:30",
            "Make the operations report of the last whole month (or the month named), kept in the admin, "
            "mailed to REPORT_EMAILS.",
            arguments=(
                Argument("period", "month", "the month to report, e.g. 2026-11 (default: last month)", parse_month),
            ),
        ),
    )
}
# Each job's audit actions, maintenance.<job> and maintenance.<job>_error (deia.audit_actions).
for _name in JOBS:
    declare_job(_name)
