from __future__ import annotations

from django.db import models


class Sample(models.Model):
    """One figure of one minute (or, after the roll-up, one hour) of the application's own history.

    Counters (requests, errors, latency buckets, cache reads, messages, health minutes) hold
    what happened in the span; gauges (bots by status, database size) what was seen in it.
    Written by the web's traffic flush (deia.traffic, at most every few seconds per process,
    added in place) and by the once-a-minute sampler (ops.console.sampling); read by
    ops.console.figures.StoredSource.
    """

    at = models.DateTimeField(help_text="Start of the span (UTC)")
    span = models.PositiveIntegerField(help_text="Seconds: 60 for a minute, 3600 for an hour rolled up")
    name = models.CharField(max_length=40)
    label = models.CharField(max_length=40, blank=True, help_text="A bucket's upper bound, a status; else empty")
    value = models.FloatField()

    class Meta:
        db_table = "ops_sample"
        constraints = [
            # The flush's INSERT ... ON CONFLICT adds to the row of its minute; a figure's
            # window is read as name IN (...) AND at BETWEEN ... (the leading columns).
            models.UniqueConstraint(fields=["name", "at", "label", "span"], name="ops_sample_name_at_label_span_uniq"),
        ]
        indexes = [
            # The roll-up and the retention: minute rows older than N days, every row older than M days.
            models.Index(fields=["span", "at"], name="ops_sample_span_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name}{{{self.label}}} {self.at:%Y-%m-%d %H:%M} {self.value:g}"
