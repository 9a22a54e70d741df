"""The project's own records, which every app writes: the audit log, run-time flags and
stored metrics. (Their tables kept the names they had under ops, where they began.)"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from deia.audit_actions import Severity


class AuditLog(models.Model):
    """One row per operator or automatic action that changed state. Never updated; deleted
    only by the audit_retention job once older than AUDIT_RETENTION_DAYS.

    `actor` keeps the name even when the user row is later deleted (user goes NULL).
    Actions and their severities are declared in deia/audit_actions.py. Failures have
    severity error and carry "error" in the action (bot.start_error), so the guide's
    `WHERE action LIKE '%error%'` finds them too.
    """

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    actor = models.CharField(max_length=150, help_text="User name, or a system actor such as reconcile or celery")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=100, help_text="Dotted name, e.g. bot.start or bot.start_error")
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.INFO, editable=False)
    target = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        db_table = "audit_logs"
        ordering = ["-created_at", "-id"]
        # Viewing is the model's view permission; taking a copy away is a permission of its own.
        permissions = [("export_auditlog", "Can export the audit log as CSV")]
        indexes = [
            # The admin list and the guide's "latest errors" query read newest first.
            models.Index(fields=["-created_at"], name="audit_created_idx"),
            # Admin filter by action, and counts of one action over time (diagnose).
            models.Index(fields=["action", "-created_at"], name="audit_action_created_idx"),
            # diagnose's audit_errors: severity = error in the last 24 h; the admin's filter.
            models.Index(fields=["severity", "-created_at"], name="audit_severity_created_idx"),
            # A bot's trail on its admin page: target = its slug, or LIKE 'bots.bot:<id> %'
            # (pattern ops, so the prefix match uses it whatever the collation).
            models.Index(fields=["target"], name="audit_target_idx", opclasses=["varchar_pattern_ops"]),
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

    class Meta:
        db_table = "ops_runtimeflag"

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
        db_table = "ops_metricvalue"
        constraints = [models.UniqueConstraint(fields=["name", "labels"], name="metric_name_labels_uniq")]

    def __str__(self) -> str:
        return f"{self.name}{{{self.labels}}} {self.value}"
