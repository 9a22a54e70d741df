"""Growth curves: what gets slower as the fleet and the message history grow.

1. Bots in the database (10, 100, 1,000; all stopped, so nothing is started): GET /api/bots
   p95 under gunicorn (default worker count, 100 sequential requests per run) and the
   reconcile passes (reconcile_all, beat's fleet-wide pass; reconcile_host, this host's).
2. Stored messages (1 million, then 10 million, loaded with INSERT ... SELECT
   generate_series, not the ORM; 100 bots, conversations of 20 messages): the reads the
   product makes, through the ORM as the code writes them: a conversation's last 50, a
   bot's last 100, and the per-bot COUNT(*) the API's message list pages with; and the
   guide's SQL, SELECT COUNT(*) FROM chat_messages, against what the console reads
   instead (PostgreSQL's estimate, pg_class.reltuples).
Runs against a private PostgreSQL cluster (bench.support.private_postgres), dropped at the
end with its rows: ten million messages would crowd the shared server's cache.
Each figure: median (min to max) of BENCH_REPEATS runs; a read's figure is the p95 of
READS reads of random conversations or bots per run.
"""

from __future__ import annotations

import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import (  # noqa: E402
    conversation_id,
    gunicorn,
    load_average,
    load_messages,
    percentile,
    repeats,
    rerun_in_private_postgres,
    smoke,
    spread,
    total_size,
)

BOT_COUNTS = (3, 10) if smoke() else (10, 100, 1000)
MESSAGE_COUNTS = (2_000, 10_000) if smoke() else (1_000_000, 10_000_000)
MESSAGE_BOTS = 100
CONVERSATION_LENGTH = 20
REQUESTS = 10 if smoke() else 100
READS = 20 if smoke() else 200
CHUNK = 1_000_000  # rows per INSERT ... SELECT
TABLE = "chat_messages"


def main() -> int:
    rerun = rerun_in_private_postgres(__file__)
    if rerun is not None:
        return rerun
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deia.settings")
    os.environ["API_THROTTLE_USER"] = "off"
    os.environ["BOT_RUNNER_TEMPLATE"] = "false"  # its reconcile passes start no bot: no template to leave behind
    import django

    django.setup()
    bots = bot_growth()
    messages = message_growth()
    report(bots, messages)
    return 0


def timed(fn) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


# --- bots ---------------------------------------------------------------------------
def bot_growth() -> dict[int, dict]:
    import httpx
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    from bots.lifecycle import reconcile
    from bots.models import Bot
    from deia.apitokens.models import ApiToken

    user = get_user_model().objects.create(username="bench-growth", is_staff=True)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="bots", codename="manage_all_bots"))
    _, key = ApiToken.objects.issue(user, name="bench")
    auth = {"Authorization": f"Token {key}"}
    results: dict[int, dict] = {}
    with gunicorn() as base, httpx.Client(timeout=30, headers=auth) as client:
        for count in BOT_COUNTS:
            have = Bot.objects.count()
            Bot.objects.bulk_create(Bot(name=f"growth-{i:05}", slug=f"growth-{i:05}") for i in range(have, count))
            for _ in range(10):  # every worker has its connections
                assert len(client.get(f"{base}/api/bots").json()) == count
            api, everything, host = [], [], []
            for _ in range(repeats()):
                times = []
                for _ in range(REQUESTS):
                    began = time.perf_counter()
                    response = client.get(f"{base}/api/bots")
                    times.append((time.perf_counter() - began) * 1000)
                    assert response.status_code == 200
                api.append(percentile(times, 95))
                everything.append(timed(reconcile.reconcile_all))
                host.append(timed(reconcile.reconcile_host))
            results[count] = {"api": api, "all": everything, "host": host, "bytes": len(response.content)}
            print(f"bench: {count} bots measured", file=sys.stderr)
    Bot.objects.filter(slug__startswith="growth-").delete()
    return results


# --- messages -----------------------------------------------------------------------
def message_growth() -> dict[int, dict]:
    from django.db import connection
    from django.utils import timezone

    from bots import partitions
    from bots.models import Bot, ChatMessage
    from deia.paginator import estimated_rows

    bots = Bot.objects.bulk_create(Bot(name=f"history-{i:03}", slug=f"history-{i:03}") for i in range(MESSAGE_BOTS))
    bot_ids = [bot.pk for bot in bots]
    results: dict[int, dict] = {}
    loaded = 0
    try:
        for target in MESSAGE_COUNTS:
            began = time.perf_counter()
            with connection.cursor() as cursor:
                # Every month the rows fall in has its partition (none in the default one).
                months = partitions.months_between(timezone.now() - timedelta(seconds=target), timezone.now())
                for month in months:
                    partitions.ensure_month(month)
                args = {"length": CONVERSATION_LENGTH, "bots": MESSAGE_BOTS, "prefix": "history-", "step": 1}
                load_messages(
                    cursor, loaded, target, chunk=CHUNK, start=timezone.now() - timedelta(seconds=target), **args
                )
            load_seconds = time.perf_counter() - began
            loaded = target
            print(f"bench: {target} messages loaded in {load_seconds:.0f} s", file=sys.stderr)
            conversations = target // CONVERSATION_LENGTH
            reads: dict[str, list[float]] = {
                "conversation": [],
                "bot": [],
                "bot_count": [],
                "count": [],
                "estimate": [],
            }
            for _ in range(repeats()):
                times: dict[str, list[float]] = {"conversation": [], "bot": [], "bot_count": []}
                for _ in range(READS):
                    conversation = conversation_id(random.randrange(conversations))
                    bot_id = random.choice(bot_ids)
                    q = ChatMessage.objects.order_by("-created_at", "-id")
                    times["conversation"].append(timed(lambda c=conversation, q=q: list(q.filter(conversation=c)[:50])))
                    times["bot"].append(timed(lambda b=bot_id, q=q: list(q.filter(bot_id=b)[:100])))
                for _ in range(max(3, READS // 20)):  # counts are slow: fewer of them
                    bot_id = random.choice(bot_ids)
                    times["bot_count"].append(timed(lambda b=bot_id: ChatMessage.objects.filter(bot_id=b).count()))
                for name, values in times.items():
                    reads[name].append(percentile(values, 95) * 1000)
                with connection.cursor() as cursor:
                    reads["count"].append(
                        timed(lambda c=cursor: c.execute("SELECT COUNT(*) FROM chat_messages")) * 1000
                    )
                    exact = cursor.fetchone()[0]
                    # What the console reads instead: the planner's estimate, kept by ANALYZE and autovacuum.
                    estimated: list[int | None] = []
                    reads["estimate"].append(timed(lambda e=estimated: e.append(estimated_rows(TABLE))) * 1000)
                    estimate = estimated[0]
            size = total_size()
            results[target] = {
                **reads,
                "load_seconds": load_seconds,
                "exact": exact,
                "estimated": estimate,
                "size": size,
                "load": load_average(),
            }
    finally:
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE chat_messages")
        Bot.objects.filter(pk__in=bot_ids).delete()
    return results


def report(bots: dict[int, dict], messages: dict[int, dict]) -> None:
    n = repeats()
    print("## Growth curves (bench/growth_bench.py)\n")
    print(
        "A private PostgreSQL 15 cluster (shared server's defaults); every figure is the median (min to max) "
        f"of {n} runs.\n"
    )
    print(
        f"### Bots in the database\n\nAll stopped (the cost of running bots is in the fleet bench). "
        f"GET /api/bots: the p95 of {REQUESTS} sequential requests per run, one page with every bot.\n"
    )
    print("| bots | GET /api/bots p95 ms | body bytes | reconcile_all s | reconcile_host s |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for count, r in bots.items():
        print(f"| {count:,} | {spread(r['api'])} | {r['bytes']:,} | {spread(r['all'], 3)} | {spread(r['host'], 3)} |")
    print(
        f"\n### Stored messages\n\n{MESSAGE_BOTS} bots, conversations of {CONVERSATION_LENGTH} messages, loaded "
        f"with INSERT ... SELECT generate_series in chunks of {CHUNK:,} rows (secondary indexes dropped "
        "for the load and built again after it), then ANALYZE. Reads through "
        f"the ORM as the product writes them; p95 of {READS} reads of random conversations or bots per run "
        f"(the per-bot count: {max(3, READS // 20)} per run).\n"
    )
    print(
        "| messages | load s | table + indexes | conversation's last 50, p95 ms | bot's last 100, p95 ms "
        "| a bot's COUNT(*) (the API's page count), p95 ms | guide's SELECT COUNT(*) ms | reltuples estimate ms "
        "| estimate / exact | load average |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for count, r in messages.items():
        accuracy = r["estimated"] / r["exact"] if r["exact"] else 0
        print(
            f"| {count:,} | {r['load_seconds']:.0f} | {r['size'] / 1024**3:.2f} GiB | {spread(r['conversation'], 2)} "
            f"| {spread(r['bot'], 2)} | {spread(r['bot_count'])} | {spread(r['count'])} | {spread(r['estimate'], 2)} "
            f"| {accuracy:.3f} | {r['load']} |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
