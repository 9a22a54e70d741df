"""Metrics of the web app: stored counters, the database pool, and the /metrics renderer.

Two kinds of metric live here:
- *stored* counters and histograms (lifecycle and maintenance events). Celery workers on
  any host add to them inside the transaction of the event, in the `MetricValue` table;
  the web app exports the sums. A counter cannot go backwards when a process restarts and
  does not depend on which gunicorn worker answers the scrape.
- per-process gauges (the database pool), aggregated by prometheus_client's
  multiprocess mode under gunicorn.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import connections, transaction
from django.db.models import F
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from ops.models import MetricValue


@dataclass(frozen=True)
class StoredMetric:
    name: str
    kind: str  # counter | gauge | histogram
    help: str
    labelnames: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    # Label sets exported at zero before the first event, so increase() sees the first one.
    initial: tuple[tuple[str, ...], ...] = field(default=((),))


DECLARED: dict[str, StoredMetric] = {}


def declare(metric: StoredMetric) -> StoredMetric:
    DECLARED[metric.name] = metric
    return metric


def _labels_key(metric: StoredMetric, labels: dict[str, str]) -> str:
    if set(labels) != set(metric.labelnames):
        raise ValueError(f"{metric.name} takes labels {metric.labelnames}, got {sorted(labels)}")
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _add(name: str, key: str, amount: float) -> None:
    updated = MetricValue.objects.filter(name=name, labels=key).update(value=F("value") + amount)
    if not updated:
        with transaction.atomic():
            row, created = MetricValue.objects.select_for_update().get_or_create(
                name=name, labels=key, defaults={"value": amount}
            )
            if not created:
                MetricValue.objects.filter(pk=row.pk).update(value=F("value") + amount)


def inc(name: str, amount: float = 1.0, **labels: str) -> None:
    metric = DECLARED[name]
    assert metric.kind == "counter", name
    _add(name, _labels_key(metric, labels), amount)


def set_gauge(name: str, value: float, **labels: str) -> None:
    metric = DECLARED[name]
    assert metric.kind == "gauge", name
    MetricValue.objects.update_or_create(name=name, labels=_labels_key(metric, labels), defaults={"value": value})


def observe(name: str, value: float, **labels: str) -> None:
    """Add one observation to a stored histogram (cumulative buckets, _sum and _count)."""
    metric = DECLARED[name]
    assert metric.kind == "histogram", name
    key = _labels_key(metric, labels)
    for bound in metric.buckets:
        if value <= bound:
            _add(f"{name}_bucket", f"{key},le={bound:g}".lstrip(","), 1)
    _add(f"{name}_bucket", f"{key},le=+Inf".lstrip(","), 1)
    _add(f"{name}_sum", key, value)
    _add(f"{name}_count", key, 1)


def _split(key: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in key.split(",") if pair)


class StoredMetricsCollector:
    """Renders every declared stored metric from one query."""

    def collect(self) -> Iterable:
        rows: dict[str, dict[str, float]] = {}
        for name, labels, value in MetricValue.objects.values_list("name", "labels", "value"):
            rows.setdefault(name, {})[labels] = value
        for metric in DECLARED.values():
            yield from _family(metric, rows)


def _family(metric: StoredMetric, rows: dict[str, dict[str, float]]):
    names = list(metric.labelnames)
    if metric.kind in ("counter", "gauge"):
        family_cls = CounterMetricFamily if metric.kind == "counter" else GaugeMetricFamily
        family = family_cls(metric.name, metric.help, labels=names)
        values = {_labels_key(metric, dict(zip(names, initial, strict=True))): 0.0 for initial in metric.initial}
        values.update(rows.get(metric.name, {}))
        for key, value in sorted(values.items()):
            labels = _split(key)
            family.add_metric([labels[n] for n in names], value)
        yield family
        return
    family = HistogramMetricFamily(metric.name, metric.help, labels=names)
    keys = {_labels_key(metric, dict(zip(names, initial, strict=True))) for initial in metric.initial}
    keys |= set(rows.get(f"{metric.name}_count", {}))
    for key in sorted(keys):
        bucket_rows = rows.get(f"{metric.name}_bucket", {})
        buckets = []
        for bound in [*(f"{b:g}" for b in metric.buckets), "+Inf"]:
            bucket_key = f"{key},le={bound}".lstrip(",")
            buckets.append((bound, bucket_rows.get(bucket_key, 0.0)))
        labels = _split(key)
        family.add_metric(
            [labels[n] for n in names],
            buckets=buckets,
            sum_value=rows.get(f"{metric.name}_sum", {}).get(key, 0.0),
        )
    yield family


# --- maintenance and backup (written by ops jobs) -----------------------------------
MAINTENANCE_TASKS = (
    "backup",
    "verify_backup",
    "rotate_backups",
    "vacuum",
    "db_report",
    "redis_bgsave",
    "cleanup_logs",
    "purge_messages",
    "health_report",
)
MAINTENANCE_RESULTS = ("ok", "warning", "failed")
declare(
    StoredMetric(
        "deia_maintenance_runs_total",
        "counter",
        "Maintenance job runs by task and result.",
        ("result", "task"),
        initial=tuple((r, t) for r in MAINTENANCE_RESULTS for t in MAINTENANCE_TASKS),
    )
)
declare(
    StoredMetric(
        "deia_maintenance_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the last successful run of each maintenance task (0 = never).",
        ("task",),
        initial=tuple((t,) for t in MAINTENANCE_TASKS),
    )
)
declare(StoredMetric("deia_backup_last_success_timestamp_seconds", "gauge", "Unix time of the last good backup."))
declare(StoredMetric("deia_backup_size_bytes", "gauge", "Size of the last good backup."))


# --- database pool (per process; summed over gunicorn workers) ----------------------
POOL_CONNECTIONS = Gauge(
    "deia_db_pool_connections",
    "Database pool connections of this process by state (in_use, idle).",
    ["state"],
    multiprocess_mode="livesum",
)
POOL_MAX = Gauge("deia_db_pool_max", "Largest size the database pool may grow to.", multiprocess_mode="livesum")
POOL_CONNECTIONS.labels(state="in_use")
POOL_CONNECTIONS.labels(state="idle")


def update_pool_gauges() -> None:
    """Read psycopg's pool statistics for this process's default database."""
    pool = getattr(connections["default"], "pool", None)
    if pool is None:
        return
    stats = pool.get_stats()
    size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
    POOL_CONNECTIONS.labels(state="in_use").set(max(0, size - idle))
    POOL_CONNECTIONS.labels(state="idle").set(idle)
    POOL_MAX.set(stats.get("pool_max", 0))


# --- rendering ----------------------------------------------------------------------
# Collectors that read the database at scrape time (registered by apps in ready()).
SCRAPE_COLLECTORS: list[Callable[[], Iterable]] = []


class _ScrapeTime:
    def collect(self):
        for collect in SCRAPE_COLLECTORS:
            yield from collect()
        yield from StoredMetricsCollector().collect()


def render_web_metrics() -> tuple[bytes, str]:
    update_pool_gauges()
    extra = CollectorRegistry(auto_describe=False)
    extra.register(_ScrapeTime())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        # process_* of the worker that answered: the multiprocess collector has none.
        ProcessCollector(registry=extra)
    else:
        registry = REGISTRY
    return generate_latest(registry) + generate_latest(extra), CONTENT_TYPE_LATEST
