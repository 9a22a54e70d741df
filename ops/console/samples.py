"""Writing the Overview's history: the Sample rows, their names, the roll-up and the retention.

Minute rows are kept MINUTE_DAYS days, then each hour's minutes become one hourly row
(counters summed, gauges averaged); every row goes after RETENTION_DAYS days.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction

from deia import traffic
from ops.console.models import Sample

MINUTE, HOUR = 60, 3600
MINUTE_DAYS = 2
RETENTION_DAYS = 35
# At most this many hours are rolled up per sampler run: a long outage catches up in steps.
ROLLUP_HOURS_PER_RUN = 48

# Counter names (what happened in the span): the web's traffic ...
REQUESTS, ERRORS, LATENCY = traffic.REQUESTS, traffic.ERRORS, traffic.LATENCY
CACHE_HITS, CACHE_MISSES = traffic.CACHE_HITS, traffic.CACHE_MISSES
# ... and the sampler's: minutes probed and found healthy, chat answers and their latency buckets.
HEALTH_MINUTES, HEALTH_OK = "health_minutes", "health_ok"
MESSAGES, MESSAGE_LATENCY, FIRST_TOKEN = "messages", "message_latency", "first_token"
# Gauge names (what was seen): bots by status (label), the database's size.
BOTS, DATABASE_BYTES = "bots", "database_bytes"
GAUGES = frozenset({BOTS, DATABASE_BYTES})

# Upper bounds (seconds) of each stored histogram. Only buckets with counts are stored; the
# bounds give an empty bucket's place, so a p95 is interpolated from the right lower bound.
# The message and first-token bounds are the runner's (bots/metrics.py), so both sources agree.
MESSAGE_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
FIRST_TOKEN_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
BUCKETS: dict[str, tuple[float, ...]] = {
    LATENCY: traffic.LATENCY_BUCKETS,
    MESSAGE_LATENCY: MESSAGE_BUCKETS,
    FIRST_TOKEN: FIRST_TOKEN_BUCKETS,
}

Row = tuple[datetime, int, str, str, float]  # at, span, name, label, value


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def upsert(rows: Iterable[Row], *, add: bool) -> int:
    """One statement: new rows inserted, existing ones added to (add) or replaced.

    INSERT ... ON CONFLICT DO UPDATE is the same SQL on PostgreSQL and SQLite; Django's
    bulk_create(update_conflicts=True) can only replace a value, not add to it.
    """
    rows = list(rows)
    if not rows:
        return 0
    table = Sample._meta.db_table
    adapt = connection.ops.adapt_datetimefield_value
    placeholders = ", ".join(["(%s, %s, %s, %s, %s)"] * len(rows))
    params: list = []
    for at, span, name, label, value in rows:
        params += [adapt(at), span, name, label, float(value)]
    new_value = f"{table}.value + excluded.value" if add else "excluded.value"
    sql = (
        f"INSERT INTO {table} (at, span, name, label, value) VALUES {placeholders} "  # noqa: S608 - names are ours
        f"ON CONFLICT (name, at, label, span) DO UPDATE SET value = {new_value}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    return len(rows)


def store_traffic(taken: dict[int, traffic.Counts]) -> None:
    """deia.traffic's sink: one statement per flush, whatever the number of requests."""
    upsert(
        (
            (datetime.fromtimestamp(minute, UTC), MINUTE, name, label, value)
            for minute, name, label, value in traffic.minutes_of(taken)
        ),
        add=True,
    )


def roll_up(now: datetime) -> int:
    """Minute rows of whole hours older than MINUTE_DAYS become hourly rows; returns the hours rolled."""
    cutoff = (now - timedelta(days=MINUTE_DAYS)).replace(minute=0, second=0, microsecond=0)
    oldest = Sample.objects.filter(span=MINUTE, at__lt=cutoff).order_by("at").values_list("at", flat=True).first()
    if oldest is None:
        return 0
    until = min(cutoff, oldest.replace(minute=0, second=0, microsecond=0) + timedelta(hours=ROLLUP_HOURS_PER_RUN))
    minutes = Sample.objects.filter(span=MINUTE, at__lt=until)
    sums: dict[tuple[datetime, str, str], float] = defaultdict(float)
    seen: dict[tuple[datetime, str, str], int] = defaultdict(int)
    for at, name, label, value in minutes.values_list("at", "name", "label", "value"):
        key = (at.replace(minute=0, second=0, microsecond=0), name, label)
        sums[key] += value
        seen[key] += 1
    counters = [(at, HOUR, n, lb, v) for (at, n, lb), v in sums.items() if n not in GAUGES]
    gauges = [(at, HOUR, n, lb, v / seen[(at, n, lb)]) for (at, n, lb), v in sums.items() if n in GAUGES]
    with transaction.atomic():
        upsert(counters, add=True)
        upsert(gauges, add=False)
        minutes.delete()
    return len({at for at, _, _ in sums})


def purge(now: datetime) -> int:
    deleted, _ = Sample.objects.filter(at__lt=now - timedelta(days=RETENTION_DAYS)).delete()
    return deleted
