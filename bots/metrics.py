"""Bot metrics.

- Lifecycle counters and the startup histogram are *stored* (deia.metrics): workers on any
  host add to them in the transaction of the transition; the web app exports them.
- Fleet gauges are read from the database when the web app is scraped.
- Message, LLM and token metrics live in each runner process and are served by the
  runner's own /metrics (prometheus_client's default registry, one process per bot).
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count
from django.db.models.functions import Now
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from bots.models import Bot, Host, HostState, Status
from deia.flags import starts_frozen
from deia.metrics import RUNNER_ONLY, SCRAPE_COLLECTORS, StoredMetric, declare

# --- stored lifecycle metrics (web app) -----------------------------------------------
STARTS = declare(
    StoredMetric(
        "deia_bot_starts_total", "counter", "Bot start attempts by result.", ("result",), initial=(("ok",), ("error",))
    )
)
START_ERRORS = declare(StoredMetric("deia_bot_start_errors_total", "counter", "Failed bot starts."))
STARTUP_SECONDS = declare(
    StoredMetric(
        "deia_bot_startup_seconds",
        "histogram",
        "Seconds from spawn to a healthy /health of a bot runner.",
        buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0),
    )
)
CRASHES = declare(StoredMetric("deia_bot_crashes_total", "counter", "Bots found dead or with a stale heartbeat."))
START_FALLBACKS = declare(
    StoredMetric(
        "deia_bot_start_fallbacks_total",
        "counter",
        "Bot starts that spawned `manage.py runbot` because the host's runner template could not fork it, by reason.",
        ("reason",),
        initial=(("unavailable",), ("replacing",), ("failed",)),
    )
)
RESTARTS = declare(StoredMetric("deia_bot_restarts_total", "counter", "Automatic restarts after a crash."))
RESCHEDULES = declare(
    StoredMetric(
        "deia_bot_reschedules_total",
        "counter",
        "Bots placed on another host, by reason (host_lost, drain).",
        ("reason",),
        initial=(("host_lost",), ("drain",)),
    )
)


def collect_fleet():
    """deia_bots{status} and deia_bots_max, read from the database at scrape time."""
    counts = dict.fromkeys(Status.values, 0)
    for row in Bot.objects.order_by().values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    bots = GaugeMetricFamily("deia_bots", "Bots by observed status.", labels=["status"])
    for status, n in counts.items():
        bots.add_metric([status], n)
    yield bots
    limit = 0 if starts_frozen() else settings.MAX_BOTS
    yield GaugeMetricFamily("deia_bots_max", "Most bots allowed to run now (0 while starts are frozen).", value=limit)


SCRAPE_COLLECTORS.append(collect_fleet)


def collect_hosts():
    """deia_hosts{state} and the per-host gauges, read from the database at scrape time."""
    # One query for the hosts and the database's clock, one for the bots per host (if any host).
    hosts = list(Host.objects.annotate(db_now=Now()))
    state_of = {h.name: h.state_at(h.db_now, settings.HOST_LEASE_SECONDS) for h in hosts}
    loads = Bot.objects.per_host() if hosts else {}
    totals = GaugeMetricFamily("deia_hosts", "Hosts by state.", labels=["state"])
    for state in HostState.values:
        totals.add_metric([state], sum(1 for s in state_of.values() if s == state))
    yield totals
    bots = GaugeMetricFamily("deia_host_bots", "Bots placed on each host (running or due to start).", labels=["host"])
    capacity = GaugeMetricFamily("deia_host_capacity", "Most bots a host takes (HOST_MAX_BOTS).", labels=["host"])
    state = GaugeMetricFamily("deia_host_state", "1 for each host's current state.", labels=["host", "state"])
    since = GaugeMetricFamily(
        "deia_host_draining_since_timestamp_seconds", "When a draining host's drain was asked.", labels=["host"]
    )
    for host in hosts:
        bots.add_metric([host.name], loads.get(host.name, 0))
        capacity.add_metric([host.name], host.capacity)
        for value in HostState.values:
            state.add_metric([host.name, value], 1 if state_of[host.name] == value else 0)
        if host.draining and host.draining_since:
            since.add_metric([host.name], host.draining_since.timestamp())
    yield from (bots, capacity, state, since)


SCRAPE_COLLECTORS.append(collect_hosts)

# --- runner metrics (one process per bot) ---------------------------------------------
MESSAGES = Counter("deia_bot_messages", "Chat messages answered by this bot.", ["bot"])
MESSAGE_ERRORS = Counter("deia_bot_message_errors", "Chat messages that failed.", ["bot"])
MESSAGE_SECONDS = Histogram(
    "deia_bot_message_processing_seconds",
    "Seconds to process one chat message, storage and LLM included.",
    ["bot"],
    buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)
LLM_SECONDS = Histogram(
    "deia_llm_request_seconds",
    "Seconds per LLM backend request.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0),
)
LLM_TOKENS = Counter("deia_llm_tokens", "LLM tokens by kind (prompt, completion).", ["bot", "kind"])
FIRST_TOKEN_SECONDS = Histogram(
    "deia_bot_first_token_seconds",
    "Seconds from a chat's arrival at the runner to the first piece of the answer.",
    ["bot"],
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)
CHATS_IN_FLIGHT = Gauge("deia_chats_in_flight", "Chats this bot is answering now.", ["bot"])
RUNNER_ONLY.update(
    {"deia_bot_messages", "deia_bot_message_errors", "deia_bot_message_processing_seconds", "deia_llm_request_seconds"}
    | {"deia_llm_tokens", "deia_bot_first_token_seconds", "deia_chats_in_flight"}
)
# Both sides refuse chats: a runner at BOT_MAX_CONCURRENT_CHATS (reason bot_busy), the web
# for a user at CHAT_MAX_CONCURRENT_PER_USER (reason user_limit). Prometheus sums the two.
CHAT_REJECTED = Counter("deia_chat_rejected", "Chats refused at once instead of queued, by reason.", ["bot", "reason"])
REJECT_BOT_BUSY, REJECT_USER_LIMIT = "bot_busy", "user_limit"


def init_runner_metrics(bot_slug: str) -> None:
    """Create every runner series at zero so the first increase is visible."""
    MESSAGES.labels(bot=bot_slug)
    MESSAGE_ERRORS.labels(bot=bot_slug)
    MESSAGE_SECONDS.labels(bot=bot_slug)
    LLM_TOKENS.labels(bot=bot_slug, kind="prompt")
    LLM_TOKENS.labels(bot=bot_slug, kind="completion")
    FIRST_TOKEN_SECONDS.labels(bot=bot_slug)
    CHATS_IN_FLIGHT.labels(bot=bot_slug)
    CHAT_REJECTED.labels(bot=bot_slug, reason=REJECT_BOT_BUSY)
