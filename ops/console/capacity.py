"""Capacity planning: the operations guide's scaling triggers, and growth projected from stored data.

Each trigger is a pure grading of a measured value (`cpu_trigger(0.72)`), so the thresholds
are tested on known numbers; `assess()` measures them on this installation. A figure that
cannot be measured here is `no data`, said in words, never a made-up zero.

Thresholds (the guide's "Scaling triggers"; a value above the threshold holds, at it not):
web CPU above 70 % sustained, memory above 80 %, database connections above 80 % of
max_connections, API p95 up more than 10 % week over week, messages per day up more than
10 % week over week.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone
from prometheus_client import ProcessCollector

from bots.models import ChatMessage, Role
from deia.probes.services import probe_disk
from ops.console.figures import Figure, PrometheusSource, Source, SourceError, source
from ops.diagnose.database import connection_usage
from ops.diagnose.host import memory_kib
from ops.metrics import WebProcessesCollector
from ops.models import MaintenanceRun

CPU_LIMIT = 0.70
MEMORY_LIMIT = 0.80
CONNECTIONS_LIMIT = 0.80
GROWTH_LIMIT = 0.10  # week over week
DAY = 86400.0


class State(StrEnum):
    HOLDS = "holds"
    CLEAR = "clear"
    NO_DATA = "no data"


@dataclass(frozen=True)
class Trigger:
    key: str
    title: str
    threshold: str  # in words
    state: State
    value: str  # what was measured, in words ("no data: why" when nothing was)
    source: str  # where the figure came from
    advice: tuple[str, ...] = ()  # what to do while it holds (the guide's scaling options)

    @property
    def holds(self) -> bool:
        return self.state == State.HOLDS


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _graded(key, title, threshold, value, limit, text, source, advice) -> Trigger:
    if value is None:
        return Trigger(key, title, threshold, State.NO_DATA, f"no data: {text}", source, advice)
    state = State.HOLDS if value > limit else State.CLEAR
    return Trigger(key, title, threshold, state, text, source, advice)


CPU_ADVICE = (
    "Add web workers (GUNICORN_WORKERS; gunicorn's default is 2 x cores + 1) while the host has idle cores.",
    "Otherwise add a second web host behind the load balancer, or move to a bigger host (the guide: 8 cores).",
)
MEMORY_ADVICE = (
    "Now: stop the least-used bots (manage.py stop_least_used --keep N) or lower MAX_BOTS.",
    "Then: run bots on another worker host (a Celery worker with its own host queue), or add memory (the guide: 8 GB).",
)
CONNECTIONS_ADVICE = (
    "Put PgBouncer (transaction pooling) in front of PostgreSQL, or raise max_connections with the memory to match.",
    "Meanwhile: manage.py terminate_idle_connections; runbooks/database-connections.md.",
)
P95_ADVICE = (
    "Find what got slower: the db_report job's table sizes and unused indexes, slow queries (manage.py diagnose).",
    "Add web workers or a web host; send the read-heavy pages (lists, reports) to a read replica.",
)
MESSAGES_ADVICE = (
    "Plan storage: set CHAT_RETENTION_DAYS (the purge_messages job) and watch the database projection below.",
    "More chats need more bots: another worker host before MAX_BOTS is reached; a read replica for history reads.",
)


def cpu_trigger(fraction: float | None, source: str, why_missing: str = "") -> Trigger:
    text = why_missing if fraction is None else f"{_pct(fraction)} of the host's cores"
    return _graded("cpu", "Web CPU", "above 70 % sustained", fraction, CPU_LIMIT, text, source, CPU_ADVICE)


def memory_trigger(used: float | None, source: str = "/proc/meminfo") -> Trigger:
    text = "cannot read /proc/meminfo" if used is None else f"{_pct(used)} of the host's memory in use"
    return _graded("memory", "Memory", "above 80 %", used, MEMORY_LIMIT, text, source, MEMORY_ADVICE)


def connections_trigger(used: int | None, limit: int | None) -> Trigger:
    ratio = None if used is None or not limit else used / limit
    text = "needs PostgreSQL (pg_stat_activity)" if ratio is None else f"{used} of {limit} ({_pct(ratio)})"
    source = "pg_stat_activity, max_connections"
    return _graded(
        "db_connections",
        "Database connections",
        "above 80 % of max_connections",
        ratio,
        CONNECTIONS_LIMIT,
        text,
        source,
        CONNECTIONS_ADVICE,
    )


def growth(this: float | None, last: float | None) -> float | None:
    """this / last - 1; None when either is missing or last is 0 (no base to grow from)."""
    if this is None or last is None or last <= 0:
        return None
    return round(this / last - 1, 9)  # 110 over 100 is 10 %, not 10.000000000000009 %


def p95_trigger(this_week: float | None, last_week: float | None, source: str, why_missing: str = "") -> Trigger:
    change = growth(this_week, last_week)
    if change is None:
        text = why_missing or "needs the API p95 of this week and of the week before"
    else:
        text = f"{this_week * 1000:.0f} ms this week, {last_week * 1000:.0f} ms the week before ({change:+.0%})"
    threshold = "up more than 10 % week over week"
    return _graded("api_p95", "API p95 latency", threshold, change, GROWTH_LIMIT, text, source, P95_ADVICE)


def messages_trigger(this_week: float | None, last_week: float | None) -> Trigger:
    change = growth(this_week, last_week)
    if change is None:
        text = "needs chat messages in both of the last two weeks"
    else:
        text = f"{this_week:.1f} a day this week, {last_week:.1f} the week before ({change:+.0%})"
    return _graded(
        "messages",
        "Messages per day",
        "up more than 10 % week over week",
        change,
        GROWTH_LIMIT,
        text,
        "chat messages (questions) stored",
        MESSAGES_ADVICE,
    )


# --- series and projections -------------------------------------------------------------
def human_bytes(size: float | None) -> str | None:
    if size is None:
        return None
    sign, size = ("-" if size < 0 else ""), abs(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{sign}{size:.0f} {unit}" if unit == "B" else f"{sign}{size:.1f} {unit}"
        size /= 1024
    return None


Point = tuple[datetime, float]


def linear_fit(points: Sequence[Point]) -> tuple[float, float] | None:
    """Least squares (slope per day, value at the last point) or None with fewer than two moments."""
    if len({t for t, _ in points}) < 2:
        return None
    t0 = points[-1][0]
    xs = [(t - t0).total_seconds() / DAY for t, _ in points]
    ys = [v for _, v in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return slope, my - slope * mx


def days_until_full(free_bytes: float, growth_per_day: float | None) -> float | None:
    """Days until `free_bytes` are used at `growth_per_day`; None when it is not growing."""
    if growth_per_day is None or growth_per_day <= 0:
        return None
    return free_bytes / growth_per_day


@dataclass(frozen=True)
class Projection:
    name: str
    unit: str  # "messages/day", "bytes"
    points: list[Point]
    slope_per_day: float | None
    now: float | None  # the fitted value today
    in_30_days: float | None
    in_90_days: float | None

    @property
    def total(self) -> float:
        return sum(v for _, v in self.points)

    def shown(self, value: float | None) -> str:
        """A value of this projection in words: sizes in KiB/MiB/GiB, counts to one decimal."""
        if value is None:
            return "no data"
        return human_bytes(value) if self.unit == "bytes" else f"{value:.1f}"

    @classmethod
    def of(cls, name: str, unit: str, points: list[Point], at: datetime) -> Projection:
        fit = linear_fit(points)
        if fit is None:
            last = points[-1][1] if points else None
            return cls(name, unit, points, None, last, None, None)
        slope, at_last = fit
        ahead = (at - points[-1][0]).total_seconds() / DAY
        now = at_last + slope * ahead
        return cls(name, unit, points, slope, now, max(0.0, now + 30 * slope), max(0.0, now + 90 * slope))


def messages_per_day(start: datetime, end: datetime) -> dict[str, dict[date, int]]:
    """Questions (user messages) per bot slug and UTC day in [start, end); days without any are absent."""
    rows = (
        ChatMessage.objects.filter(role=Role.USER, created_at__gte=start, created_at__lt=end)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("bot__slug", "day")
        .annotate(n=Count("id"))
        .order_by()
    )
    per_bot: dict[str, dict[date, int]] = {}
    for row in rows:
        per_bot.setdefault(row["bot__slug"], {})[row["day"]] = row["n"]
    return per_bot


def daily_points(counts: dict[date, int], first: date, days: int) -> list[Point]:
    """One point per day from `first`, zeros included (a quiet day is a measurement too)."""
    out = []
    for i in range(days):
        day = first + timedelta(days=i)
        out.append((datetime(day.year, day.month, day.day, tzinfo=UTC), float(counts.get(day, 0))))
    return out


def run_series(job: str, key: str, since: datetime) -> list[Point]:
    """(finished, details[key]) of the successful runs of `job` since `since`, oldest first."""
    runs = (
        MaintenanceRun.objects.filter(job=job, status__in=MaintenanceRun.SUCCEEDED, started_at__gte=since)
        .order_by("started_at")
        .values_list("started_at", "details")
    )
    return [(at, float(details[key])) for at, details in runs if isinstance(details.get(key), int | float)]


def database_bytes_now() -> int | None:
    if settings.DATABASE_IS_POSTGRES:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            return cursor.fetchone()[0]
    path = Path(connection.settings_dict["NAME"])
    return path.stat().st_size if path.is_file() else None


@dataclass(frozen=True)
class BackupDisk:
    folder: str
    free_bytes: int | None
    total_bytes: int | None
    written_bytes: float  # by successful backups in the window
    freed_bytes: float  # by rotate_backups in the window
    window_days: int
    why_missing: str = ""

    @property
    def growth_per_day(self) -> float:
        return (self.written_bytes - self.freed_bytes) / self.window_days

    @property
    def days_until_full(self) -> float | None:
        return None if self.free_bytes is None else days_until_full(self.free_bytes, self.growth_per_day)

    @property
    def full_in(self) -> str:
        days = self.days_until_full
        if self.free_bytes is None:
            return f"no data: {self.why_missing}"
        if days is None:
            return "never at the current rate: the folder is not growing"
        if days > 3650:
            return "more than ten years at the current rate"
        return f"{days:.0f} days at the current rate"


def backup_disk(now: datetime, window_days: int = 14) -> BackupDisk:
    """The backup folder's file system, and its net growth: bytes the backups wrote minus what rotation freed."""
    since = now - timedelta(days=window_days)
    written = sum(v for _, v in run_series("backup", "size", since))
    freed = sum(v for _, v in run_series("rotate_backups", "freed_bytes", since))
    folder = settings.BACKUP_DIR
    result = probe_disk(folder)  # before the first backup: the file system it will be on
    if not result.ok:
        return BackupDisk(str(folder), None, None, written, freed, window_days, str(result.detail))
    facts = result.facts
    return BackupDisk(str(folder), facts["free_bytes"], facts["total_bytes"], written, freed, window_days)


# --- measuring this installation -------------------------------------------------------
def web_cpu_since_start() -> float | None:
    """The web processes' CPU time over their lifetime, as a fraction of this host's cores.

    Without Prometheus nothing samples CPU over time; what the kernel keeps is each process's
    CPU seconds and start time, so the average since the web started is the sustained load
    it has had. Under gunicorn that is the master and every worker; elsewhere this process.
    """
    master = os.environ.get("DEIA_WEB_MASTER_PID", "")
    pids = WebProcessesCollector(int(master)).pids() if master.isdigit() else [os.getpid()]
    now, load = time.time(), 0.0
    for pid in pids:
        samples = {
            s.name: s.value
            for family in ProcessCollector(pid=lambda pid=pid: pid, registry=None).collect()
            for s in family.samples
        }
        cpu, started = samples.get("process_cpu_seconds_total"), samples.get("process_start_time_seconds")
        if cpu is None or started is None or now - started <= 0:
            continue
        load += cpu / (now - started)
    return load / (os.cpu_count() or 1) if pids else None


def memory_used() -> float | None:
    memory = memory_kib()
    return None if memory is None else 1 - memory[1] / memory[0]


def connections() -> tuple[int | None, int | None]:
    return connection_usage() if settings.DATABASE_IS_POSTGRES else (None, None)


def weekly_messages(now: datetime) -> tuple[float | None, float | None]:
    """Questions per day over the last 7 days and the 7 before (None: none stored in that week)."""
    out = []
    for weeks_back in (1, 2):
        end = now - timedelta(days=7 * (weeks_back - 1))
        n = ChatMessage.objects.filter(role=Role.USER, created_at__gte=end - timedelta(days=7), created_at__lt=end)
        count = n.count()
        out.append(count / 7 if count else None)
    return out[0], out[1]


# The web's CPU, each minute of the last 30 the 5-minute rate, summed over its processes
# (one series per pid): the smallest of them is what it has sustained for 30 minutes.
WEB_CPU_SUSTAINED = 'min_over_time(sum(rate(process_cpu_seconds_total{job="deia-web"}[5m]))[30m:1m])'


def source_name(src: Source) -> str:
    return "Prometheus (PROMETHEUS_URL)" if isinstance(src, PrometheusSource) else "the application's own samples"


def web_cpu(src: Source) -> tuple[float | None, str, str]:
    """(fraction of this host's cores, source, why missing): Prometheus' 30 minutes, else the processes' lifetime."""
    if not isinstance(src, PrometheusSource):
        return web_cpu_since_start(), "the web processes' CPU time since they started (no Prometheus)", ""
    what = f"Prometheus: {WEB_CPU_SUSTAINED}, over {os.cpu_count() or 1} cores"
    try:
        result = src.query("query", {"query": WEB_CPU_SUSTAINED})
    except SourceError as exc:
        return None, what, str(exc)
    value = float(result[0]["value"][1]) if result else math.nan
    if not math.isfinite(value):
        return None, what, "Prometheus has no process_cpu_seconds_total of job deia-web for the last 30 minutes"
    return value / (os.cpu_count() or 1), what, ""


def api_p95_weeks(src: Source, now: datetime) -> tuple[float | None, float | None, str, str]:
    """The API's p95 over the last 7 days and the 7 before, from the figures source (+ why missing)."""
    week = timedelta(days=7)
    try:
        this = src.scalar(Figure.API_P95, now - week, now)
        last = src.scalar(Figure.API_P95, now - 2 * week, now - week)
    except SourceError as exc:
        return None, None, source_name(src), str(exc)
    return this, last, source_name(src), ""


@dataclass
class Capacity:
    at: datetime
    triggers: list[Trigger]
    messages: list[Projection] = field(default_factory=list)  # per bot, busiest first
    database: Projection | None = None
    backups: Projection | None = None
    disk: BackupDisk | None = None
    history_days: int = 28

    @property
    def holding(self) -> list[Trigger]:
        return [t for t in self.triggers if t.holds]

    @property
    def storage(self) -> list[Projection]:
        return [p for p in (self.database, self.backups) if p is not None]


def assess(
    now: datetime | None = None,
    *,
    src: Source | None = None,
    history_days: int = 28,
) -> Capacity:
    """Every trigger and projection, measured now; CPU and the API's p95 from the figures source."""
    now = now or timezone.now()
    src = src or source()
    this_week, last_week = weekly_messages(now)
    used, limit = connections()
    triggers = [
        cpu_trigger(*web_cpu(src)),
        memory_trigger(memory_used()),
        connections_trigger(used, limit),
        p95_trigger(*api_p95_weeks(src, now)),
        messages_trigger(this_week, last_week),
    ]
    first = (now - timedelta(days=history_days)).date() + timedelta(days=1)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    per_bot = messages_per_day(start, now)
    messages = [
        Projection.of(slug, "messages/day", daily_points(counts, first, history_days), now)
        for slug, counts in sorted(per_bot.items(), key=lambda item: -sum(item[1].values()))
    ]
    since = now - timedelta(days=90)
    db_points = run_series("db_report", "database_bytes", since)
    current = database_bytes_now()
    if current is not None:
        db_points.append((now, float(current)))
    return Capacity(
        now,
        triggers,
        messages,
        Projection.of("database", "bytes", db_points, now),
        Projection.of("backup", "bytes", run_series("backup", "size", since), now),
        backup_disk(now),
        history_days,
    )
