"""The once-a-minute sampler (beat task ops.console.sample_figures): what the web's traffic
flush cannot see, stored as Sample rows, then the roll-up and the retention.

- health: the web's /health/ready (every dependency check) answered 200 or not, this minute;
- messages: bot answers of the last complete minute(s) and their latency buckets (from the
  chat_messages table: it survives runner restarts);
- first token: the increase of each running bot's deia_bot_first_token_seconds histogram
  (its /metrics) since the previous sample; runners keep it only in memory;
- bots by status and the database's size, as seen now.

Writing the same minute twice replaces it (the task may run twice in a minute); no
MaintenanceRun row is written: this is sampling, not maintenance.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from bots.models import Bot, ChatMessage, Role, Status
from ops.console import samples
from ops.console.samples import MINUTE, Row, minute_of

log = logging.getLogger(__name__)

MESSAGE_BUCKETS = samples.MESSAGE_BUCKETS
# A sampler that was down catches up this many minutes of messages, no more.
CATCH_UP_MINUTES = 10
FIRST_TOKEN_CACHE_KEY = "ops:console:first-token:{bot}:{pid}"  # noqa: S105 - a cache key
FIRST_TOKEN_FAMILY = "deia_bot_first_token_seconds"  # noqa: S105 - a metric name


def health_ok() -> bool:
    try:
        response = httpx.get(f"{settings.DIAGNOSE_WEB_URL}/health/ready", timeout=settings.DIAGNOSE_TIMEOUT)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _bucket_rows(at: datetime, name: str, cumulative: dict[str, float]) -> list[Row]:
    """Cumulative bucket counts {le: n} (in increasing order, "+Inf" last) -> per-bucket rows."""
    rows, below = [], 0.0
    for le, count in cumulative.items():
        if count - below > 0:
            rows.append((at, MINUTE, name, le, count - below))
        below = max(below, count)
    return rows


def message_rows(until: datetime) -> list[Row]:
    """Every minute since the last sampled one (at most CATCH_UP_MINUTES), up to `until` excluded."""
    last = (
        samples.Sample.objects.filter(name=samples.MESSAGES, span=MINUTE, at__lt=until)
        .order_by("-at")
        .values_list("at", flat=True)
        .first()
    )
    first = until - timedelta(minutes=CATCH_UP_MINUTES)
    if last is not None:
        first = max(first, last + timedelta(minutes=1))
    # Through chat_bot_created_idx (bot, created_at): chat_messages has no index on created_at alone.
    bot_ids = list(Bot.objects.values_list("pk", flat=True))
    buckets = {f"{b:g}": Count("id", filter=Q(latency_ms__lte=b * 1000)) for b in MESSAGE_BUCKETS}
    rows: list[Row] = []
    at = first
    while at < until:
        counts = ChatMessage.objects.filter(
            bot_id__in=bot_ids, role=Role.ASSISTANT, created_at__gte=at, created_at__lt=at + timedelta(minutes=1)
        ).aggregate(total=Count("id"), timed=Count("id", filter=Q(latency_ms__isnull=False)), **buckets)
        rows.append((at, MINUTE, samples.MESSAGES, "", counts.pop("total")))
        timed = counts.pop("timed")
        rows += _bucket_rows(at, samples.MESSAGE_LATENCY, {**counts, "+Inf": timed})
        at += timedelta(minutes=1)
    return rows


def _first_token_cumulative(text: str) -> dict[str, float]:
    for family in text_string_to_metric_families(text):
        if family.name == FIRST_TOKEN_FAMILY:
            cumulative: dict[str, float] = {}
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    le = sample.labels["le"]
                    cumulative[le] = cumulative.get(le, 0.0) + sample.value
            return cumulative
    return {}


def first_token_rows(at: datetime, bots: Iterable[Bot]) -> list[Row]:
    """The increase of every running bot's first-token histogram since the last sample, summed."""
    headers = {"Authorization": f"Bearer {settings.METRICS_TOKEN}"} if settings.METRICS_TOKEN else {}
    increase: dict[str, float] = {}
    for bot in bots:
        if not bot.address:
            continue
        try:
            response = httpx.get(f"http://{bot.address}/metrics", headers=headers, timeout=2)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            log.info("first-token sample of bot %s skipped: %s", bot.slug, exc)
            continue
        now = _first_token_cumulative(response.text)
        key = FIRST_TOKEN_CACHE_KEY.format(bot=bot.pk, pid=bot.pid)
        try:
            before = cache.get(key) or {}
            cache.set(key, now, timeout=3600)
        except Exception:  # noqa: BLE001 - without the cache no increase is known: the rest is still sampled
            log.info("first-token sample skipped: the cache is not answering")
            return []
        for le, count in now.items():
            # A new process (new pid: a new key) starts from nothing, as Prometheus' increase() does.
            increase[le] = increase.get(le, 0.0) + max(0.0, count - before.get(le, 0.0))
    ordered = dict(sorted(increase.items(), key=lambda item: float(item[0])))
    return _bucket_rows(at, samples.FIRST_TOKEN, ordered)


def database_bytes() -> float:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_database_size(current_database())")
            return float(cursor.fetchone()[0])
    name = connection.settings_dict["NAME"]
    return float(Path(name).stat().st_size) if Path(str(name)).exists() else 0.0


def sample(now: datetime | None = None) -> dict[str, int]:
    """Take this minute's samples; returns counts for the task's log line."""
    now = now or timezone.now()
    minute = minute_of(now)
    bots = list(Bot.objects.order_by())
    statuses = dict.fromkeys(Status.values, 0)
    for bot in bots:
        statuses[bot.status] = statuses.get(bot.status, 0) + 1
    ok = health_ok()
    gauges: list[Row] = [(minute, MINUTE, samples.BOTS, status, n) for status, n in statuses.items()]
    gauges.append((minute, MINUTE, samples.DATABASE_BYTES, "", database_bytes()))
    gauges += [(minute, MINUTE, samples.HEALTH_MINUTES, "", 1), (minute, MINUTE, samples.HEALTH_OK, "", int(ok))]
    gauges += message_rows(minute)
    samples.upsert(gauges, add=False)
    running = [bot for bot in bots if bot.status == Status.RUNNING]
    samples.upsert(first_token_rows(minute, running), add=True)
    rolled = samples.roll_up(now)
    purged = samples.purge(now)
    return {"bots": len(bots), "health_ok": int(ok), "hours_rolled_up": rolled, "purged": purged}
