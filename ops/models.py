from __future__ import annotations

from django.db import models
from django.utils import timezone


class MaintenanceRun(models.Model):
    """One run of a maintenance job (backup, restore check, VACUUM...), whoever started it.

    Written by ops.maintenance.recording.run_job only: created as `running`, finished with
    ok / warning / failed, a one-line summary and the job's measurements in `details`.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        OK = "ok", "OK"
        WARNING = "warning", "Warning"
        FAILED = "failed", "Failed"

    # A run that ended and did its job (a warning still did it).
    SUCCEEDED = (Status.OK, Status.WARNING)

    job = models.CharField(max_length=50)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    actor = models.CharField(max_length=150, blank=True, help_text="Who started it: celery (beat) or a user name")
    host = models.CharField(max_length=255, blank=True)
    summary = models.CharField(max_length=500, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        permissions = [
            ("view_operations", "Can see the Operations page (diagnose, jobs, remedies)"),
            ("operate", "Can run maintenance jobs and remediations from the Operations page"),
        ]
        indexes = [
            # "Last good run of job X" (diagnose, verify_backup's file lookup, the admin filter).
            models.Index(fields=["job", "status", "-started_at"], name="mrun_job_status_started_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.job} {self.started_at:%Y-%m-%d %H:%M:%S} {self.status}"

    @property
    def duration(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class Report(models.Model):
    """A weekly or monthly operations report, made by the weekly_report / monthly_report jobs.

    `figures` holds what was measured (ops.console.reports.gather); `body` is the Markdown
    made from them, shown as the report's page, downloaded and mailed as it is. One report
    per kind and period: making it again replaces it in place (same id, same address).
    """

    class Kind(models.TextChoices):
        WEEKLY = "weekly", "Weekly"
        MONTHLY = "monthly", "Monthly"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    period_start = models.DateField(help_text="First day of the period (UTC)")
    period_end = models.DateField(help_text="Last day of the period (UTC), included")
    created_at = models.DateTimeField(default=timezone.now, help_text="When it was made (or last replaced)")
    body = models.TextField(help_text="Markdown")
    figures = models.JSONField(default=dict)

    class Meta:
        ordering = ["-period_start", "kind"]
        constraints = [
            # One report per period; also serves the job's "is there one already" lookup.
            models.UniqueConstraint(fields=["kind", "period_start"], name="report_kind_period_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} report {self.period_start:%Y-%m-%d} to {self.period_end:%Y-%m-%d}"

    @property
    def filename(self) -> str:
        return f"deia-{self.kind}-report-{self.period_start:%Y-%m-%d}.md"


from ops.console.models import Sample  # noqa: E402,F401  (the System Overview's history, ops.console)
