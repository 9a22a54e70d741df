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

import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.signals import request_finished
from django.db import connections, transaction
from django.db.models import F
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from ops.models import MetricValue

# The x_created series double every counter's and histogram's output and no dashboard reads them.
disable_created_metrics()


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
    "audit_retention",
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
declare(
    StoredMetric(
        "deia_task_rejected_total",
        "counter",
        "Messages a Celery worker dropped because it could not read them (bad bytes, bad JSON, unknown task).",
        ("queue",),
        initial=(("bots",), ("maintenance",)),
    )
)
declare(StoredMetric("deia_backup_last_success_timestamp_seconds", "gauge", "Unix time of the last good backup."))
declare(StoredMetric("deia_backup_size_bytes", "gauge", "Size of the last good backup."))


# --- database pool (per process; the web's summed over its gunicorn workers) ---------
# The web exports the sum over its live workers; a bot runner its own pool.
POOL_CONNECTIONS = Gauge(
    "deia_db_pool_connections",
    "Database pool connections by state (in_use, idle); the web sums its processes.",
    ["state"],
    multiprocess_mode="livesum",
)
POOL_MAX = Gauge(
    "deia_db_pool_max",
    "Most connections the database pool may open; the web sums its processes.",
    multiprocess_mode="livesum",
)
POOL_CONNECTIONS.labels(state="in_use")
POOL_CONNECTIONS.labels(state="idle")
# Known before the first request, so a fresh worker counts towards the total at once.
POOL_MAX.set(settings.DB_POOL_MAX)


def update_pool_gauges(**_signal_kwargs) -> None:
    """Read psycopg's pool statistics for this process's default database."""
    pool = getattr(connections["default"], "pool", None)
    if pool is None:
        return
    stats = pool.get_stats()
    size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
    POOL_CONNECTIONS.labels(state="in_use").set(max(0, size - idle))
    POOL_CONNECTIONS.labels(state="idle").set(idle)
    POOL_MAX.set(stats.get("pool_max", 0))


# After Django's own request_finished receiver has put the connection back in the pool.
request_finished.connect(update_pool_gauges, dispatch_uid="ops.metrics.update_pool_gauges")


# --- dependency health (set by every check; refreshed in the background at scrape) -------
# Registered only here, so that a bot runner's /metrics (the default registry) carries no
# web-only families; under gunicorn the multiprocess files carry them whatever the registry.
WEB_REGISTRY = CollectorRegistry()
HEALTH_UP = Gauge(
    "deia_health_check_up",
    "1 if the dependency check passed the last time it ran, else 0.",
    ["check"],
    multiprocess_mode="livemostrecent",
    registry=WEB_REGISTRY,
)
HEALTH_SECONDS = Gauge(
    "deia_health_check_seconds",
    "Seconds the dependency check took the last time it ran (its timeout when it hung).",
    ["check"],
    multiprocess_mode="livemostrecent",
    registry=WEB_REGISTRY,
)
_checked_at: dict[str, float] = {}
_refresh_lock = threading.Lock()
_refresh: threading.Thread | None = None
# A scrape waits this long for the very first results of a process, never longer.
FIRST_HEALTH_WAIT = 0.25


def record_health(results) -> None:
    """Called by ops.health.run_checks with every result, whoever asked for the check."""
    now = time.monotonic()
    for result in results:
        HEALTH_UP.labels(check=result.name).set(1 if result.ok else 0)
        HEALTH_SECONDS.labels(check=result.name).set(result.latency_ms / 1000)
        _checked_at[result.name] = now


def refresh_health() -> None:
    """Re-run in the background the checks older than HEALTH_METRICS_MAX_AGE.

    A scrape must stay fast and must not hang on a hanging dependency, so it never waits
    for a check, except briefly for a process's very first results.
    """
    global _refresh
    from ops.health import CHECKS, run_checks

    now = time.monotonic()
    stale = [n for n in CHECKS if now - _checked_at.get(n, -math.inf) > settings.HEALTH_METRICS_MAX_AGE]
    if not stale:
        return
    with _refresh_lock:
        if _refresh is None or not _refresh.is_alive():
            _refresh = threading.Thread(target=run_checks, args=(stale,), name="health-refresh", daemon=True)
            _refresh.start()
        thread = _refresh
    if any(n not in _checked_at for n in CHECKS):
        thread.join(FIRST_HEALTH_WAIT)


# --- rendering ----------------------------------------------------------------------
# Collectors that read the database at scrape time (registered by apps in ready()).
SCRAPE_COLLECTORS: list[Callable[[], Iterable]] = []
# Families that only a bot runner exports (bots.metrics adds them): the web leaves them out
# rather than show a runner's histogram stuck at zero.
RUNNER_ONLY: set[str] = set()


class _ScrapeTime:
    def collect(self):
        for collect in SCRAPE_COLLECTORS:
            yield from collect()
        yield from StoredMetricsCollector().collect()


class _WebOnly:
    def __init__(self, *registries: CollectorRegistry) -> None:
        self.registries = registries

    def collect(self):
        for registry in self.registries:
            for family in registry.collect():
                if family.name not in RUNNER_ONLY:
                    yield family


class WebProcessesCollector:
    """process_* of the gunicorn master and each live worker, labelled by pid.

    One worker's figures would jump between workers from scrape to scrape (the CPU counter
    would run backwards); a series per pid is a true counter, and sum() over pids gives
    the whole web's CPU and memory. A pid changes only when a worker is replaced.
    """

    def __init__(self, master: int) -> None:
        self.master = master

    def pids(self) -> list[int]:
        try:
            children = Path(f"/proc/{self.master}/task/{self.master}/children").read_text().split()
        except OSError:
            return [os.getpid()]
        return [self.master, *(int(pid) for pid in children)]

    def collect(self):
        merged: dict[str, Metric] = {}
        for pid in self.pids():
            for family in ProcessCollector(pid=lambda pid=pid: pid, registry=None).collect():
                target = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                for sample in family.samples:
                    target.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        yield from merged.values()


def _process_collector():
    master = os.environ.get("DEIA_WEB_MASTER_PID", "")
    if master.isdigit() and int(master) == os.getppid():
        return WebProcessesCollector(int(master))
    return ProcessCollector(registry=None)


def render_web_metrics() -> tuple[bytes, str]:
    refresh_health()
    update_pool_gauges()
    extra = CollectorRegistry(auto_describe=False)
    extra.register(_ScrapeTime())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Every gunicorn worker's counters, histograms and live gauges, summed.
        files = CollectorRegistry()
        MultiProcessCollector(files)
        source = _WebOnly(files)
        # The multiprocess collector has no process_* of its own.
        extra.register(_process_collector())
    else:
        source = _WebOnly(REGISTRY, WEB_REGISTRY)
    return generate_latest(source) + generate_latest(extra), CONTENT_TYPE_LATEST
