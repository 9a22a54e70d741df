"""What the database remembers: the last backup and restore check, errors, bots behind their desired state."""

from __future__ import annotations

from datetime import UTC, timedelta

from django.conf import settings
from django.utils import timezone

from bots.models import Bot, Status
from deia.audit_actions import Severity
from deia.models import AuditLog
from ops.diagnose.grading import Check, Level, ok
from ops.maintenance.runs import first_run, last_finished, last_success


def _age_hours(moment) -> float:
    return (timezone.now() - moment).total_seconds() / 3600


def check_last_backup() -> Check:
    limit = settings.DIAGNOSE_BACKUP_MAX_AGE_HOURS
    threshold = f"crit > {limit:g} h"
    step = "manage.py backup; check deia-maintenance, deia-beat and BACKUP_DIR (runbooks/deia-backup-too-old.md)"
    run = last_success("backup")
    if run is None:
        return _no_backup_yet(threshold, step)
    age = _age_hours(run.finished_at or run.started_at)
    level = Level.CRIT if age > limit else Level.OK
    return Check("last_backup", level, f"{age:.1f} h ago ({run.details.get('file', '?')})", threshold, step)


def _no_backup_yet(threshold: str, step: str) -> Check:
    # A fresh install has no backup until the schedule's first run: not an emergency
    # before then, as long as the first one is scheduled and has not failed.
    first = first_run("backup")
    if first is None or timezone.now() >= first.deadline:
        return Check("last_backup", Level.CRIT, "no good backup recorded", threshold, step)
    at, deadline = first.at.astimezone(UTC), first.deadline.astimezone(UTC)
    return Check(
        "last_backup",
        Level.WARN,
        f"no backup yet, the first is scheduled at {at:%H:%M} UTC ({at:%Y-%m-%d}); "
        f"critical if none by {deadline:%H:%M}",
        threshold,
        "none needed before then; manage.py backup takes one now",
    )


def check_last_restore_check() -> Check:
    days = settings.DIAGNOSE_RESTORE_CHECK_MAX_AGE_DAYS
    threshold = f"warn > {days:g} days; crit when the last one failed"
    latest = last_finished("verify_backup")
    if latest is not None and latest.status == latest.Status.FAILED:
        return Check(
            "last_restore_check",
            Level.CRIT,
            f"last check failed: {latest.summary}",
            threshold,
            "the backups may not restore: read the run in the admin, then manage.py backup && manage.py verify_backup",
        )
    run = last_success("verify_backup")
    step = "manage.py verify_backup"
    if run is None:
        return Check("last_restore_check", Level.WARN, "no restore check recorded", threshold, step)
    age = _age_hours(run.finished_at or run.started_at) / 24
    level = Level.WARN if age > days else Level.OK
    return Check("last_restore_check", level, f"{age:.1f} days ago ({run.details.get('file', '?')})", threshold, step)


def check_audit_errors() -> Check:
    since = timezone.now() - timedelta(hours=24)
    errors = AuditLog.objects.filter(severity=Severity.ERROR, created_at__gte=since)
    count = errors.count()
    if not count:
        return ok("audit_errors", "0 in the last 24 h", "0")
    latest = errors.order_by("-created_at").first()
    return Check(
        "audit_errors",
        Level.WARN,
        f"{count} in the last 24 h (latest {latest.action} {latest.target})",
        "0",
        "runbooks/high-error-rate.md: the admin's audit log, filtered on severity error",
    )


def check_bots() -> Check:
    behind = Bot.objects.desired_running().exclude(status__in=[Status.RUNNING, Status.STARTING])
    failed = sorted(behind.filter(status=Status.ERROR).values_list("slug", flat=True))
    others = sorted(behind.exclude(status=Status.ERROR).values_list("slug", flat=True))
    threshold = "all bots desired running are running"
    if failed:
        return Check(
            "bots",
            Level.CRIT,
            f"{len(failed)} in error ({', '.join(failed[:5])}), {len(others)} more not running",
            threshold,
            "read each bot's last_error in the admin, fix the cause, then start it again",
        )
    if others:
        return Check(
            "bots",
            Level.WARN,
            f"{len(others)} desired running but not running ({', '.join(others[:5])})",
            threshold,
            "check the workers and the reconcile schedule; the bot's last_error in the admin",
        )
    return ok("bots", f"{Bot.objects.desired_running().count()} desired running, all running", threshold)
