from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditLog(models.Model):
    """One row per operator or automatic action that changed state. Never updated; deleted
    only by the audit_retention job once older than AUDIT_RETENTION_DAYS.

    `actor` keeps the name even when the user row is later deleted (user goes NULL).
    Failures carry "error" in the action (bot.start_error) so the guide's
    `WHERE action LIKE '%error%'` finds them.
    """

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    actor = models.CharField(max_length=150, help_text="User name, or a system actor such as reconcile or celery")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=100, help_text="Dotted name, e.g. bot.start or bot.start_error")
    target = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        db_table = "audit_logs"
        ordering = ["-created_at", "-id"]
        indexes = [
            # The admin list and the guide's "latest errors" query read newest first.
            models.Index(fields=["-created_at"], name="audit_created_idx"),
            # Admin filter by action, and counts of one action over time (diagnose).
            models.Index(fields=["action", "-created_at"], name="audit_action_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target}"


class RuntimeFlag(models.Model):
    """Switches operators flip at run time, read by every process from the database."""

    FREEZE_STARTS = "freeze_starts"

    name = models.CharField(max_length=50, primary_key=True)
    enabled = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True)

    def __str__(self) -> str:
        return f"{self.name}={'on' if self.enabled else 'off'}"


class MetricValue(models.Model):
    """Counters and histograms that many processes on many hosts add to.

    Lifecycle and maintenance events happen in Celery workers, possibly on other hosts;
    the web app exports their sum from here, so no count depends on which process or
    machine did the work, and a restart never makes a counter go backwards.
    """

    name = models.CharField(max_length=100)
    labels = models.CharField(max_length=200, blank=True, help_text="Canonical k=v pairs, sorted, comma-separated")
    value = models.FloatField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "labels"], name="metric_name_labels_uniq")]

    def __str__(self) -> str:
        return f"{self.name}{{{self.labels}}} {self.value}"


class MaintenanceRun(models.Model):
    """One run of a maintenance job (backup, restore check, VACUUM...), whoever started it.

    Written by ops.maintenance.runs.run_job only: created as `running`, finished with
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
