"""The System Overview's content: each figure graded against the operations guide's targets,
said in words, with where to act; and its charts.

The targets (docs: /admin/ shows them beside each figure) are declared once, in TARGETS.
A figure without data is "no data", never green. The costly part (the source's queries,
the charts, diagnose) is shared by every viewer through Django's cache for CACHE_SECONDS;
the bot counts are each viewer's own (the bots they may see).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString

from bots import access
from bots.models import Host, HostState, Status, db_now
from deia.adapters.django import connection_pool
from deia.flags import starts_frozen
from deia.redact import redact
from ops.console.charts import format_value, line_chart
from ops.console.figures import Figure, Source, SourceError, source
from ops.diagnose.cached import cached_diagnose
from ops.diagnose.database import check_db_connections
from ops.diagnose.grading import Check
from ops.diagnose.grading import Level as DiagnoseLevel
from ops.diagnose.records import check_last_backup, check_last_restore_check
from ops.maintenance import JOBS
from ops.models import MaintenanceRun

log = logging.getLogger(__name__)

CACHE_KEY = "ops:console:overview"
CACHE_SECONDS = 15
RUNBOOKS = "https://github.com/deia/bot-controller/blob/main/docs/runbooks/"


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    CRIT = "crit"
    INFO = "info"  # a figure without a target (a rate)
    NONE = "none"  # no data


WORDS = {
    Level.OK: "Good",
    Level.WARN: "Warning",
    Level.CRIT: "Critical",
    Level.INFO: "For information",
    Level.NONE: "No data",
}


@dataclass(frozen=True)
class Target:
    """Warn past `warn`, critical past `crit`; `higher_is_better` for availability and hit ratios."""

    warn: float
    crit: float
    unit: str
    higher_is_better: bool = False
    runbook: str = ""

    def level(self, value: float | None) -> Level:
        if value is None:
            return Level.NONE

        def past(limit: float) -> bool:
            return value < limit if self.higher_is_better else value > limit

        return Level.CRIT if past(self.crit) else Level.WARN if past(self.warn) else Level.OK

    def text(self) -> str:
        sign = "≥" if self.higher_is_better else "≤"
        return f"target {sign} {format_value(self.warn, self.unit)}"


# The operations guide's targets (availability 99.5 %, API p95 200 ms, error rate 0.5 %,
# message p95 500 ms) are the warning lines; the critical lines are its paging thresholds
# (error rate above 1 %, API p95 above 2 s) or, where it gives none, a plain margin.
TARGETS: dict[Figure, Target] = {
    Figure.AVAILABILITY: Target(0.995, 0.99, "ratio", higher_is_better=True, runbook="deia-error-budget-burn.md"),
    Figure.API_P95: Target(0.2, 2.0, "s", runbook="deia-api-latency-high.md"),
    Figure.API_ERROR_RATIO: Target(0.005, 0.01, "ratio", runbook="high-error-rate.md"),
    Figure.MESSAGE_P95: Target(0.5, 2.0, "s", runbook="deia-message-latency-high.md"),
    Figure.CACHE_HIT_RATIO: Target(0.7, 0.3, "ratio", higher_is_better=True, runbook="deia-cache-hit-ratio-low.md"),
}
# Database connections in use against max_connections: the guide's 80 % trigger, critical at 95 %.
CONNECTIONS = Target(0.8, 0.95, "ratio", runbook="postgres-connections-high.md")
DIAGNOSE_LEVELS = {DiagnoseLevel.OK: Level.OK, DiagnoseLevel.WARN: Level.WARN, DiagnoseLevel.CRIT: Level.CRIT}


@dataclass
class Tile:
    key: str
    title: str
    value: str
    level: Level
    detail: str = ""  # the target or what the value means
    link: str = ""
    link_text: str = ""

    @property
    def words(self) -> str:
        return WORDS[self.level]


@dataclass
class Overview:
    tiles: list[Tile] = field(default_factory=list)
    charts: list[SafeString] = field(default_factory=list)
    problems: list[Check] = field(default_factory=list)
    failing_jobs: list[MaintenanceRun] = field(default_factory=list)
    source_name: str = ""
    source_error: str = ""
    at: datetime | None = None


def _runbook(name: str) -> str:
    return RUNBOOKS + name if name else ""


class Reader:
    """The source's figures; after one SourceError the rest are no data (one timeout, not twenty)."""

    def __init__(self, src: Source) -> None:
        self.src = src
        self.error = ""

    def call(self, fn: Callable, *args):
        if self.error:
            return None
        try:
            return fn(*args)
        except SourceError as exc:
            self.error = str(exc)
            return None

    def scalar(self, figure: Figure, window: timedelta, now: datetime) -> float | None:
        return self.call(self.src.scalar, figure, now - window, now)

    def series(self, figure: Figure, window: timedelta, step: timedelta, now: datetime) -> dict:
        return self.call(self.src.series, figure, now - window, now, step) or {}


def graded_tile(reader: Reader, figure: Figure, window: timedelta, label: str, title: str, now: datetime) -> Tile:
    target = TARGETS[figure]
    value = reader.scalar(figure, window, now)
    return Tile(
        f"{figure.value}_{label}",
        f"{title} ({label})",
        format_value(value, target.unit),
        target.level(value),
        target.text(),
        _runbook(target.runbook),
        "runbook",
    )


def info_tile(reader: Reader, figure: Figure, window: timedelta, label: str, title: str, unit: str, now) -> Tile:
    value = reader.scalar(figure, window, now)
    if value is not None and unit == "msg/min":
        value *= 60
    return Tile(f"{figure.value}_{label}", f"{title} ({label})", format_value(value, unit), _info(value))


def _info(value) -> Level:
    return Level.NONE if value is None else Level.INFO


def check_tile(key: str, title: str, check: Check, link: str, link_text: str) -> Tile:
    return Tile(key, title, check.value, DIAGNOSE_LEVELS[check.level], check.threshold, link, link_text)


def connections_tile() -> Tile:
    operations = reverse("admin:ops_operations")
    pool = connection_pool("default")
    pool_text = ""
    if pool is not None:
        stats = pool.get_stats()
        in_use = max(0, stats.get("pool_size", 0) - stats.get("pool_available", 0))
        pool_text = f"this web process's pool: {in_use} in use of {stats.get('pool_max', settings.DB_POOL_MAX)}; "
    check = check_db_connections()
    tile = check_tile("db_connections", "Database connections", check, operations, "Operations page")
    tile.detail = pool_text + (check.threshold or "not measured on SQLite")
    if not settings.DATABASE_IS_POSTGRES:
        tile.level = Level.INFO
    return tile


def hosts_tile() -> Tile:
    """Hosts alive, draining and lost (Critical while any is lost: its bots are being moved)."""
    now = db_now()
    counts = dict.fromkeys(HostState, 0)
    for host in Host.objects.all():
        counts[host.state_at(now, settings.HOST_LEASE_SECONDS)] += 1
    value = ", ".join(f"{n} {state.value}" for state, n in counts.items()) if any(counts.values()) else "none yet"
    level = Level.CRIT if counts[HostState.LOST] else Level.WARN if counts[HostState.DRAINING] else Level.OK
    detail = f"lost: silent for {settings.HOST_LEASE_SECONDS:g} s (HOST_LEASE_SECONDS); its bots move elsewhere"
    return Tile("hosts", "Hosts", value, level, detail, reverse("admin:bots_host_changelist"), "host list")


def failing_jobs() -> list[MaintenanceRun]:
    """The jobs whose latest finished run failed (two queries, whatever the number of jobs)."""
    finished = MaintenanceRun.objects.exclude(status=MaintenanceRun.Status.RUNNING)
    latest = finished.filter(job__in=list(JOBS)).values("job").annotate(last=Max("started_at")).order_by()
    pairs = Q()
    for row in latest:
        pairs |= Q(job=row["job"], started_at=row["last"])
    if not pairs:
        return []
    return list(finished.filter(pairs, status=MaintenanceRun.Status.FAILED).order_by("job"))


def compute(now: datetime | None = None) -> Overview:
    """Everything but the per-user bot counts (shared by all viewers for CACHE_SECONDS)."""
    now = now or timezone.now()
    src = source()
    reader = Reader(src)
    minute, hour, day = timedelta(minutes=5), timedelta(hours=1), timedelta(days=1)
    operations = reverse("admin:ops_operations")
    tiles = [
        graded_tile(reader, Figure.AVAILABILITY, day, "24 h", "Availability", now),
        graded_tile(reader, Figure.AVAILABILITY, timedelta(days=30), "30 days", "Availability", now),
        graded_tile(reader, Figure.API_P95, minute, "5 min", "API p95 latency", now),
        graded_tile(reader, Figure.API_P95, hour, "1 h", "API p95 latency", now),
        graded_tile(reader, Figure.API_ERROR_RATIO, minute, "5 min", "API error rate", now),
        graded_tile(reader, Figure.API_ERROR_RATIO, hour, "1 h", "API error rate", now),
        info_tile(reader, Figure.REQUEST_RATE, minute, "5 min", "Requests", "req/s", now),
        info_tile(reader, Figure.MESSAGE_RATE, minute, "5 min", "Messages", "msg/min", now),
        graded_tile(reader, Figure.MESSAGE_P95, minute, "5 min", "Message p95", now),
        info_tile(reader, Figure.FIRST_TOKEN_P95, minute, "5 min", "Time to first token p95", "s", now),
        graded_tile(reader, Figure.CACHE_HIT_RATIO, hour, "1 h", "Cache hit rate", now),
        connections_tile(),
        hosts_tile(),
        check_tile(
            "last_backup",
            "Last good backup",
            check_last_backup(),
            operations,
            "Operations page (run a backup)",
        ),
        check_tile(
            "last_restore_check",
            "Last restore check",
            check_last_restore_check(),
            operations,
            "Operations page (run verify_backup)",
        ),
    ]
    jobs = failing_jobs()
    tiles.append(
        Tile(
            "failing_jobs",
            "Failing maintenance jobs",
            ", ".join(run.job for run in jobs) or "none",
            # A warning, as the DeiaMaintenanceJobFailed alert (a failed restore check is critical above).
            Level.WARN if jobs else Level.OK,
            "jobs whose last run failed",
            operations,
            "Operations page",
        )
    )
    diagnosis = cached_diagnose()
    problems = [c for c in diagnosis.checks if c.level != DiagnoseLevel.OK]
    worst = max((c.level for c in problems), default=DiagnoseLevel.OK)
    tiles.append(
        Tile(
            "diagnose",
            "Open diagnose problems",
            f"{len(problems)} of {len(diagnosis.checks)} checks" if problems else "none",
            DIAGNOSE_LEVELS[worst],
            f"checked {diagnosis.age_seconds:.0f} s ago",
            operations,
            "Operations page",
        )
    )
    charts = [
        line_chart(
            reader.series(Figure.REQUEST_RATE, hour, timedelta(minutes=1), now),
            title="Requests per second, last hour",
            unit="req/s",
        ),
        line_chart(
            reader.series(Figure.API_P95, hour, timedelta(minutes=1), now),
            title="API p95 latency, last hour",
            unit="s",
            target=TARGETS[Figure.API_P95].warn,
        ),
        line_chart(
            _per_minute(reader.series(Figure.MESSAGE_RATE, hour, timedelta(minutes=1), now)),
            title="Messages per minute, last hour",
            unit="msg/min",
        ),
        line_chart(
            reader.series(Figure.MESSAGE_P95, hour, timedelta(minutes=1), now),
            title="Message p95 latency, last hour",
            unit="s",
            target=TARGETS[Figure.MESSAGE_P95].warn,
        ),
        line_chart(
            _seen(reader.series(Figure.BOTS_BY_STATUS, day, timedelta(minutes=15), now)),
            title="Bots by status, last day",
            unit="bots",
        ),
        line_chart(
            reader.series(Figure.DATABASE_BYTES, timedelta(days=30), timedelta(hours=6), now),
            title="Database size, last 30 days",
            unit="bytes",
        ),
    ]
    name = f"Prometheus ({settings.PROMETHEUS_URL})" if settings.PROMETHEUS_URL else "the application's own samples"
    # A URL may carry a password (http://user:pass@host): never on the page.
    return Overview(tiles, charts, problems, jobs, redact(name), redact(reader.error), now)


def _seen(series: dict) -> dict:
    """Only the statuses some bot had during the day: six flat zero lines say nothing."""
    return {label: points for label, points in series.items() if any(v for _, v in points)}


def _per_minute(series: dict) -> dict:
    return {label: [(at, v * 60) for at, v in points] for label, points in series.items()}


def cached() -> Overview:
    """compute()'s result, shared for CACHE_SECONDS; with the cache down (Redis is one of the
    things the page reports on) every load computes its own."""
    try:
        overview = cache.get(CACHE_KEY)
    except Exception:  # noqa: BLE001 - any cache failure: answer from the figures themselves
        return compute()
    if not isinstance(overview, Overview):
        overview = compute()
        try:
            cache.set(CACHE_KEY, overview, timeout=CACHE_SECONDS)
        except Exception:  # noqa: BLE001,S110 - the figures are good; the next load computes them again
            pass
    return overview


def bot_tiles(user) -> list[Tile]:
    """Bots running against MAX_BOTS and by status: only the bots `user` may see (one query)."""
    counts = dict.fromkeys(Status.values, 0)
    rows = access.visible_bots(user).order_by().values("status").annotate(n=Count("id"))
    for row in rows:
        counts[row["status"]] = row["n"]
    bots = reverse("admin:bots_bot_changelist")
    limit = 0 if starts_frozen() else settings.MAX_BOTS
    running = counts[Status.RUNNING]
    scope = "" if access.sees_all(user) else " (your teams' bots)"
    if limit == 0:
        level, detail = Level.WARN, "starts are frozen (MAX_BOTS 0 or frozen on the Operations page)"
    else:
        level = Level.WARN if running >= limit else Level.OK
        detail = f"MAX_BOTS {settings.MAX_BOTS}; at the limit new starts are refused" if running >= limit else ""
    tiles = [
        Tile("bots_running", f"Bots running{scope}", f"{running} / {limit}", level, detail, bots, "bot list"),
    ]
    failing = counts[Status.ERROR] + counts[Status.CRASHED]
    by_status = ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "no bots"
    tiles.append(
        Tile(
            "bots_by_status",
            f"Bots by status{scope}",
            by_status,
            Level.CRIT if counts[Status.ERROR] else Level.WARN if failing else Level.OK,
            "error: given up after repeated failed starts; crashed: being restarted",
            f"{bots}?status__exact={Status.ERROR if counts[Status.ERROR] else Status.CRASHED}" if failing else bots,
            "bots in error" if counts[Status.ERROR] else "crashed bots" if failing else "bot list",
        )
    )
    return tiles
