"""Per-minute traffic aggregates of this web process, kept in memory and handed to sinks.

Every request adds to the counters of its minute here (requests, 5xx responses, a latency
histogram, cache hits and misses): no database write on the request path. At most every
TRAFFIC_FLUSH_SECONDS, on request_finished (as the pool gauges are updated), the minutes gathered
since the last flush are handed to the registered sinks (ops.console stores them in its
sample table) and forgotten. A sink that fails keeps nothing: the next flush starts afresh
rather than growing without bound while the database is down.

deia depends on no app: the sink that stores the aggregates is registered by ops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils.deprecation import MiddlewareMixin
from django_prometheus.cache import metrics as cache_metrics

from deia.adapters.django import Inline

log = logging.getLogger(__name__)

# Upper bounds (seconds) of the latency histogram; the last bucket is everything above.
LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0)
# Views whose time is another component's, left out of the latency histogram as the
# recording rule deia_web:http_request_duration_seconds:p95_rate5m leaves them out: a chat
# relay waits on the LLM, /health on dependencies, scrapes are not user traffic.
LATENCY_EXCLUDED_VIEWS = frozenset({"bot-messages", "health", "health-check", "metrics", "prometheus-targets"})

# The names of the counters a minute carries (a sink stores them under these names).
REQUESTS, ERRORS, LATENCY, CACHE_HITS, CACHE_MISSES = "requests", "errors", "latency", "cache_hits", "cache_misses"

# (name, label) -> value; the label is the bucket's upper bound for LATENCY ("+Inf" last), else "".
Counts = dict[tuple[str, str], float]
Sink = Callable[[dict[int, Counts]], None]


def bucket_label(seconds: float) -> str:
    for bound in LATENCY_BUCKETS:
        if seconds <= bound:
            return f"{bound:g}"
    return "+Inf"


def _cache_total(counter) -> float:
    """Sum of a django-prometheus cache counter over its backends, in this process."""
    return sum(s.value for family in counter.collect() for s in family.samples if s.name.endswith("_total"))


class Aggregator:
    """This process's minutes not yet flushed. Thread-safe; `clock` is time.time in production."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.minutes: dict[int, Counts] = defaultdict(lambda: defaultdict(float))
        self.last_flush = clock()
        self.cache_seen = (
            _cache_total(cache_metrics.django_cache_hits_total),
            _cache_total(cache_metrics.django_cache_misses_total),
        )
        self.sinks: list[Sink] = []

    def record(self, seconds: float, status: int, view: str | None) -> None:
        minute = int(self.clock() // 60) * 60
        with self.lock:
            counts = self.minutes[minute]
            counts[(REQUESTS, "")] += 1
            if status >= 500:
                counts[(ERRORS, "")] += 1
            if view not in LATENCY_EXCLUDED_VIEWS:
                counts[(LATENCY, bucket_label(seconds))] += 1

    def _take_cache_counts(self, minute: int) -> None:
        hits = _cache_total(cache_metrics.django_cache_hits_total)
        misses = _cache_total(cache_metrics.django_cache_misses_total)
        seen_hits, seen_misses = self.cache_seen
        self.cache_seen = (hits, misses)
        counts = self.minutes[minute]
        if hits > seen_hits:
            counts[(CACHE_HITS, "")] += hits - seen_hits
        if misses > seen_misses:
            counts[(CACHE_MISSES, "")] += misses - seen_misses

    def due(self) -> bool:
        return self.clock() - self.last_flush >= settings.TRAFFIC_FLUSH_SECONDS

    def take(self) -> dict[int, Counts]:
        """Every minute gathered so far (this minute's cache reads included), forgotten here."""
        now = self.clock()
        with self.lock:
            self._take_cache_counts(int(now // 60) * 60)
            taken = {minute: dict(counts) for minute, counts in self.minutes.items() if counts}
            self.minutes.clear()
            self.last_flush = now
        return taken

    def flush(self) -> int:
        """Hand the gathered minutes to every sink; returns how many minutes were handed."""
        taken = self.take()
        if taken:
            for sink in self.sinks:
                try:
                    sink(taken)
                except Exception:  # losing a few seconds of figures never fails a request
                    log.exception("traffic sink %s failed; %d minute(s) dropped", sink, len(taken))
        return len(taken)


AGGREGATOR = Aggregator()


def add_sink(sink: Sink) -> None:
    if sink not in AGGREGATOR.sinks:
        AGGREGATOR.sinks.append(sink)


def flush_if_due(**_signal_kwargs) -> None:
    """request_finished receiver: at most one flush every TRAFFIC_FLUSH_SECONDS per process."""
    if not AGGREGATOR.due():
        return
    if AGGREGATOR.flush() and not connection.in_atomic_block:
        # The sink used the database after Django's own receiver gave the connection back.
        close_old_connections()


class TrafficMiddleware(Inline, MiddlewareMixin):
    """Counts every response in this process's current minute (in memory only)."""

    def process_request(self, request) -> None:
        request.deia_traffic_started = time.perf_counter()

    def process_response(self, request, response):
        started = getattr(request, "deia_traffic_started", None)
        if started is not None:
            match = getattr(request, "resolver_match", None)
            AGGREGATOR.record(time.perf_counter() - started, response.status_code, match.url_name if match else None)
        return response


def minutes_of(taken: dict[int, Counts]) -> Iterable[tuple[int, str, str, float]]:
    """(minute as unix seconds, name, label, value) rows of a flush, for a sink."""
    for minute, counts in sorted(taken.items()):
        for (name, label), value in sorted(counts.items()):
            yield minute, name, label, value
