"""The System Overview's figures, from Prometheus or from the application's own samples.

Interface (for the overview, the capacity page and the reports):

    from ops.console.figures import Figure, SourceError, source
    src = source()          # PrometheusSource(settings.PROMETHEUS_URL) when set, else StoredSource()
    src.scalar(Figure.API_P95, start, end)                 -> float | None
    src.series(Figure.REQUEST_RATE, start, end, step)      -> {label: [(datetime, float), ...]}

- start/end are aware datetimes; step a timedelta. scalar() is the figure over the whole
  window [start, end); series() gives one point per step (at the step's start), only for
  steps that have data. Series are keyed by label: "" when unlabelled, the status for
  BOTS_BY_STATUS.
- None (or a step without a point) means "no data for that window", never a made-up 0:
  no request in the window gives no error ratio and no p95; no sample at all gives no rate.
- SourceError is raised when the source cannot answer (Prometheus unreachable or refusing
  the query); its message is one line for people.

Figures and units: AVAILABILITY (0..1), API_P95 (s), API_ERROR_RATIO (0..1), REQUEST_RATE
(requests/s), MESSAGE_RATE (bot answers/s), MESSAGE_P95 (s), FIRST_TOKEN_P95 (s),
CACHE_HIT_RATIO (0..1), BOTS_BY_STATUS (bots, by status; scalar: all bots at the end of
the window), DATABASE_BYTES (bytes; scalar: the last size seen in the window).

Definitions (both sources; the operations guide's targets: availability 99.5 %, API p95
200 ms, error rate 0.5 %, message p95 500 ms):
- availability: the share of sampled minutes in which the web answered /health/ready
  with 200 (every dependency check ok). Stored: the sampler probes it once a minute.
  Prometheus: each minute, the web is up and min(deia_health_check_up) is 1.
- API p95 and error ratio: over web responses; the p95 leaves out the chat relay,
  /health* and scrapes, as the recording rule deia_web:http_request_duration_seconds:p95_rate5m.
- p95 from histogram buckets, interpolated linearly inside the bucket as Prometheus'
  histogram_quantile() does (a p95 in the last, unbounded bucket is its lower bound).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

import httpx
from django.conf import settings

from ops.console import samples
from ops.console.models import Sample


class Figure(StrEnum):
    AVAILABILITY = "availability"
    API_P95 = "api_p95_seconds"
    API_ERROR_RATIO = "api_error_ratio"
    REQUEST_RATE = "request_rate"
    MESSAGE_RATE = "message_rate"
    MESSAGE_P95 = "message_p95_seconds"
    FIRST_TOKEN_P95 = "first_token_p95_seconds"  # noqa: S105 - a figure's name, not a secret
    CACHE_HIT_RATIO = "cache_hit_ratio"
    BOTS_BY_STATUS = "bots_by_status"
    DATABASE_BYTES = "database_bytes"


Series = dict[str, list[tuple[datetime, float]]]


class SourceError(Exception):
    """The source could not answer; str() is one line for people."""


class Source(Protocol):
    def scalar(self, figure: Figure, start: datetime, end: datetime) -> float | None: ...

    def series(self, figure: Figure, start: datetime, end: datetime, step: timedelta) -> Series: ...


def source() -> Source:
    if settings.PROMETHEUS_URL:
        return PrometheusSource(settings.PROMETHEUS_URL)
    return StoredSource()


# --- arithmetic shared by the stored source (pure functions, tested on known data) --------
def histogram_quantile(q: float, buckets: dict[str, float], bounds: tuple[float, ...] = ()) -> float | None:
    """The q-quantile of per-bucket counts {upper bound: count} ("+Inf" for the last), or None.

    `bounds` are every upper bound of the histogram, so that a bucket's lower bound is its
    neighbour's even when that one is empty (and not stored).
    """
    counts = {(math.inf if le == "+Inf" else float(le)): n for le, n in buckets.items()}
    total = sum(counts.values())
    if total <= 0:
        return None
    rank, below, lower = q * total, 0.0, 0.0
    for upper in sorted(set(counts) | set(bounds)):
        n = counts.get(upper, 0.0)
        if n > 0 and below + n >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / n
        below += n
        lower = upper
    return lower


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


Rows = list[tuple[datetime, int, str, str, float]]  # at, span, name, label, value


def _total(rows: Rows, name: str) -> float:
    return sum(r[4] for r in rows if r[2] == name)


def _buckets(rows: Rows, name: str) -> dict[str, float]:
    buckets: dict[str, float] = defaultdict(float)
    for _, _, n, label, value in rows:
        if n == name:
            buckets[label] += value
    return buckets


def _p95(rows: Rows, name: str) -> float | None:
    return histogram_quantile(0.95, _buckets(rows, name), samples.BUCKETS[name])


def _has(rows: Rows, *names: str) -> bool:
    return any(r[2] in names for r in rows)


def _last(rows: Rows, name: str) -> Series:
    """For a gauge: each label's value in the latest span that has it."""
    latest: dict[str, tuple[datetime, float]] = {}
    for at, _, n, label, value in rows:
        if n == name and (label not in latest or at >= latest[label][0]):
            latest[label] = (at, value)
    return {label: [point] for label, point in latest.items()}


def _covered_seconds(rows: Rows, name: str) -> float:
    return float(sum(span for (at, span) in {(r[0], r[1]) for r in rows if r[2] == name}))


def _request_rate(rows: Rows, seconds: float) -> float | None:
    # The web flushes only when it serves requests: an idle minute has no row. The sampler's
    # health minute says the system was being watched, so no request there is a real 0.
    if not _has(rows, samples.REQUESTS, samples.HEALTH_MINUTES):
        return None
    return _total(rows, samples.REQUESTS) / seconds


def _message_rate(rows: Rows, seconds: float) -> float | None:
    covered = _covered_seconds(rows, samples.MESSAGES)
    return _total(rows, samples.MESSAGES) / covered if covered else None


def _gauge_total(rows: Rows, name: str) -> float | None:
    last = _last(rows, name)
    if not last:
        return None
    at = max(points[0][0] for points in last.values())
    return sum(points[0][1] for points in last.values() if points[0][0] == at)


STORED: dict[Figure, tuple[tuple[str, ...], Callable[[Rows, float], float | None]]] = {
    Figure.AVAILABILITY: (
        (samples.HEALTH_OK, samples.HEALTH_MINUTES),
        lambda rows, _s: _ratio(_total(rows, samples.HEALTH_OK), _total(rows, samples.HEALTH_MINUTES)),
    ),
    Figure.API_P95: ((samples.LATENCY,), lambda rows, _s: _p95(rows, samples.LATENCY)),
    Figure.API_ERROR_RATIO: (
        (samples.ERRORS, samples.REQUESTS),
        lambda rows, _s: _ratio(_total(rows, samples.ERRORS), _total(rows, samples.REQUESTS)),
    ),
    Figure.REQUEST_RATE: ((samples.REQUESTS, samples.HEALTH_MINUTES), _request_rate),
    Figure.MESSAGE_RATE: ((samples.MESSAGES,), _message_rate),
    Figure.MESSAGE_P95: (
        (samples.MESSAGE_LATENCY,),
        lambda rows, _s: _p95(rows, samples.MESSAGE_LATENCY),
    ),
    Figure.FIRST_TOKEN_P95: (
        (samples.FIRST_TOKEN,),
        lambda rows, _s: _p95(rows, samples.FIRST_TOKEN),
    ),
    Figure.CACHE_HIT_RATIO: (
        (samples.CACHE_HITS, samples.CACHE_MISSES),
        lambda rows, _s: _ratio(
            _total(rows, samples.CACHE_HITS), _total(rows, samples.CACHE_HITS) + _total(rows, samples.CACHE_MISSES)
        ),
    ),
    Figure.BOTS_BY_STATUS: ((samples.BOTS,), lambda rows, _s: _gauge_total(rows, samples.BOTS)),
    Figure.DATABASE_BYTES: ((samples.DATABASE_BYTES,), lambda rows, _s: _gauge_total(rows, samples.DATABASE_BYTES)),
}
GAUGE_FIGURES = {Figure.BOTS_BY_STATUS: samples.BOTS, Figure.DATABASE_BYTES: samples.DATABASE_BYTES}


def _aligned(start: datetime) -> datetime:
    return start.replace(second=0, microsecond=0)


class StoredSource:
    """The application's own samples (ops_sample): the web's traffic flush and the minute sampler.

    Windows start at the whole minute: [start floored to the minute, end).
    """

    def rows(self, figure: Figure, start: datetime, end: datetime) -> Rows:
        names, _ = STORED[figure]
        return list(
            Sample.objects.filter(name__in=names, at__gte=_aligned(start), at__lt=end)
            .order_by("at")
            .values_list("at", "span", "name", "label", "value")
        )

    def scalar(self, figure: Figure, start: datetime, end: datetime) -> float | None:
        figure = Figure(figure)
        start = _aligned(start)
        seconds = (end - start).total_seconds()
        if seconds <= 0:
            raise ValueError(f"empty window: {start} to {end}")
        return STORED[figure][1](self.rows(figure, start, end), seconds)

    def series(self, figure: Figure, start: datetime, end: datetime, step: timedelta) -> Series:
        figure = Figure(figure)
        start = _aligned(start)
        if step.total_seconds() < 60:
            raise ValueError("the stored figures have one-minute steps at the finest")
        by_step: dict[int, Rows] = defaultdict(list)
        for row in self.rows(figure, start, end):
            by_step[int((row[0] - start) / step)].append(row)
        series: Series = defaultdict(list)
        for index in sorted(by_step):
            at = start + index * step
            rows = by_step[index]
            if figure in GAUGE_FIGURES:
                # Each label's last value in the step (an hourly roll-up is the hour's mean).
                for label, [(_, value)] in _last(rows, GAUGE_FIGURES[figure]).items():
                    series[label].append((at, value))
                continue
            value = STORED[figure][1](rows, step.total_seconds())
            if value is not None:
                series[""].append((at, value))
        return dict(series)


# --- Prometheus ------------------------------------------------------------------------
LATENCY_VIEWS_LEFT_OUT = "bot-messages|health|health-check|metrics|prometheus-targets"
# PromQL per figure; {w} is the window (a range such as 300s). The recording rules of
# deploy/prometheus/rules/recording.yml are used for the windows they record.
PROMQL: dict[Figure, str] = {
    Figure.AVAILABILITY: (
        "avg_over_time(((min(max by (check) (deia_health_check_up)) or on() vector(0))"
        ' * on() max(up{{job="deia-web"}}))[{w}:{resolution}])'
    ),
    Figure.API_P95: (
        "histogram_quantile(0.95, sum by (le) (rate(django_http_requests_latency_seconds_by_view_method_bucket"
        f'{{{{view!~"{LATENCY_VIEWS_LEFT_OUT}"}}}}[{{w}}])))'
    ),
    Figure.API_ERROR_RATIO: (
        # No 5xx series at all is no error (the recording rule gives nothing then).
        '(sum(rate(django_http_responses_total_by_status_total{{status=~"5.."}}[{w}])) or on() vector(0))'
        " / sum(rate(django_http_responses_total_by_status_total[{w}]))"
    ),
    Figure.REQUEST_RATE: "sum(rate(django_http_requests_total_by_method_total[{w}]))",
    Figure.MESSAGE_RATE: "sum(rate(deia_bot_messages_total[{w}]))",
    Figure.MESSAGE_P95: "histogram_quantile(0.95, sum by (le) (rate(deia_bot_message_processing_seconds_bucket[{w}])))",
    Figure.FIRST_TOKEN_P95: "histogram_quantile(0.95, sum by (le) (rate(deia_bot_first_token_seconds_bucket[{w}])))",
    Figure.CACHE_HIT_RATIO: "sum(rate(django_cache_get_hits_total[{w}])) / sum(rate(django_cache_get_total[{w}]))",
    # deia_* gauges may come from every gunicorn worker (a pid label): max, as the alert rules do.
    Figure.BOTS_BY_STATUS: "max by (status) (last_over_time(deia_bots[{w}]))",
    Figure.DATABASE_BYTES: 'max(last_over_time(pg_database_size_bytes{{datname="{database}"}}[{w}]))',
}
RECORDED: dict[tuple[Figure, int], str] = {
    (Figure.REQUEST_RATE, 300): "deia_web:http_requests:rate5m",
    (Figure.API_P95, 300): "deia_web:http_request_duration_seconds:p95_rate5m",
    (Figure.CACHE_HIT_RATIO, 300): "deia_web:cache_hits:ratio_rate5m",
    (Figure.MESSAGE_P95, 300): "deia_bots:message_processing_seconds:p95_rate5m",
    **{
        (Figure.API_ERROR_RATIO, seconds): f"deia_web:http_errors:ratio_rate{name}"
        for seconds, name in ((300, "5m"), (1800, "30m"), (3600, "1h"), (21600, "6h"), (86400, "1d"), (259200, "3d"))
    },
}
# A rate over less than this has too few scrapes to mean anything.
MIN_RANGE_SECONDS = 60


def _number(text: str) -> float | None:
    value = float(text)
    return None if math.isnan(value) or math.isinf(value) else value


class PrometheusSource:
    """Prometheus' HTTP query API (instant queries for scalars, range queries for series)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def expression(self, figure: Figure, seconds: float, *, recorded: bool = True) -> str:
        window = max(int(seconds), MIN_RANGE_SECONDS)
        rule = RECORDED.get((figure, window)) if recorded else None
        if rule:
            return rule
        return PROMQL[figure].format(
            w=f"{window}s",
            # Availability is counted per minute; a window under an hour (a fresh Prometheus
            # may not have one whole aligned minute yet) is sampled every 10 s instead.
            resolution="1m" if window >= 3600 else "10s",
            database=settings.DATABASES["default"]["NAME"],
        )

    def query(self, path: str, params: dict) -> list[dict]:
        try:
            response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=self.timeout)
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SourceError(f"Prometheus at {self.url} did not answer: {exc}") from exc
        if body.get("status") != "success":
            raise SourceError(f"Prometheus refused the query: {body.get('error', response.status_code)}")
        return body["data"]["result"]

    def scalar(self, figure: Figure, start: datetime, end: datetime) -> float | None:
        figure = Figure(figure)
        seconds = (end - start).total_seconds()
        if seconds <= 0:
            raise ValueError(f"empty window: {start} to {end}")
        expr = self.expression(figure, seconds)
        result = self.query("query", {"query": expr, "time": end.timestamp()})
        if not result and expr in RECORDED.values():
            # The rule is not loaded (or not evaluated yet): the same figure from the raw series.
            result = self.query(
                "query", {"query": self.expression(figure, seconds, recorded=False), "time": end.timestamp()}
            )
        values = [v for r in result if (v := _number(r["value"][1])) is not None]
        if not values:
            return None
        return sum(values)

    def series(self, figure: Figure, start: datetime, end: datetime, step: timedelta) -> Series:
        figure = Figure(figure)
        seconds = step.total_seconds()
        if seconds <= 0:
            raise ValueError("the step must be positive")
        expr = self.expression(figure, seconds, recorded=False)
        result = self.query(
            "query_range", {"query": expr, "start": start.timestamp(), "end": end.timestamp(), "step": seconds}
        )
        series: Series = {}
        for item in result:
            label = item["metric"].get("status", "") if figure == Figure.BOTS_BY_STATUS else ""
            points = [
                (datetime.fromtimestamp(float(at), UTC), v)
                for at, text in item["values"]
                if (v := _number(text)) is not None
            ]
            if points:
                series[label] = points
        return series
