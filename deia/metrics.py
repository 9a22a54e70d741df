"""The metric store and registry every app declares its metrics in, and the database pool gauges.

Two kinds of metric live here:
- *stored* counters and histograms (lifecycle and maintenance events). Celery workers on
  any host add to them inside the transaction of the event, in the `MetricValue` table;
  the web app exports the sums. A counter cannot go backwards when a process restarts and
  does not depend on which gunicorn worker answers the scrape.
- per-process gauges (the database pool), aggregated by prometheus_client's
  multiprocess mode under gunicorn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import F
from prometheus_client import (
    Gauge,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from deia.adapters.django import connection_pool
from deia.models import MetricValue

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

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        assert self.kind == "counter", self.name
        _add(self.name, _labels_key(self, labels), amount)

    def set(self, value: float, **labels: str) -> None:
        assert self.kind == "gauge", self.name
        key = _labels_key(self, labels)
        MetricValue.objects.update_or_create(name=self.name, labels=key, defaults={"value": value})

    def observe(self, value: float, **labels: str) -> None:
        """Add one observation to a stored histogram (cumulative buckets, _sum and _count)."""
        assert self.kind == "histogram", self.name
        key = _labels_key(self, labels)
        for bound in self.buckets:
            if value <= bound:
                _add(f"{self.name}_bucket", f"{key},le={bound:g}".lstrip(","), 1)
        _add(f"{self.name}_bucket", f"{key},le=+Inf".lstrip(","), 1)
        _add(f"{self.name}_sum", key, value)
        _add(f"{self.name}_count", key, 1)


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
    pool = connection_pool("default")
    if pool is None:
        return
    stats = pool.get_stats()
    size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
    POOL_CONNECTIONS.labels(state="in_use").set(max(0, size - idle))
    POOL_CONNECTIONS.labels(state="idle").set(idle)
    POOL_MAX.set(stats.get("pool_max", 0))


# Collectors that read the database at scrape time (registered by apps in ready()).
SCRAPE_COLLECTORS: list[Callable[[], Iterable]] = []
# Families that only a bot runner exports (bots.metrics adds them): the web leaves them out
# rather than show a runner's histogram stuck at zero.
RUNNER_ONLY: set[str] = set()
