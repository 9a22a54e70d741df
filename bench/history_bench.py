"""Chat history on the partitioned chat_messages: reads at 10 million messages, and retention.

1. Reads: 10 million messages (100 bots, conversations of 20) spread evenly over the last
   MONTHS whole months and this one, a partition each, loaded with INSERT ... SELECT
   generate_series; then what the product reads, through the ORM as the code writes it: a
   conversation's last 50 messages and a bot's last 100 (p95 of READS reads of random
   conversations or bots per run; target under 5 ms).
2. Retention of a month of messages, the oldest months first, each run on two months of its own:
   purge_messages' way on a partitioned table (bots.partitions.drop_expired: count, DETACH and
   DROP of the month's partition) against the row deletion a plain table gets (batches of
   CHAT_RETENTION_BATCH rows by created_at, as before partitioning) of the next month's rows,
   then the VACUUM those rows need before their space is reused. The table's size after each:
   a dropped partition gives its space back at once, deleted rows leave dead tuples until VACUUM.
Runs against a private PostgreSQL cluster (bench.support.private_postgres), dropped at the end.
BENCH_SMOKE=true: a few thousand rows, to check that it runs (tests/integration/test_bench_scenarios.py).
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import (  # noqa: E402
    conversation_id,
    load_average,
    load_messages,
    percentile,
    repeats,
    rerun_in_private_postgres,
    smoke,
    spread,
    total_size,
)

MESSAGES = 6_000 if smoke() else 10_000_000
BOTS = 100
CONVERSATION_LENGTH = 20
READS = 20 if smoke() else 200
CHUNK = 1_000_000


def main() -> int:
    rerun = rerun_in_private_postgres(__file__)
    if rerun is not None:
        return rerun
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deia.settings")
    import django

    django.setup()
    from bots.models import Bot

    bots = Bot.objects.bulk_create(Bot(name=f"history-{i:03}", slug=f"history-{i:03}") for i in range(BOTS))
    loaded = load()
    reads = history_reads([bot.pk for bot in bots])
    retention = retention_runs()
    report(loaded, reads, retention)
    return 0


def timed(fn) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def load() -> dict:
    """MESSAGES rows from the first of the month 2 * repeats() months ago until now."""
    from django.db import connection
    from django.utils import timezone

    from bots import partitions

    now = timezone.now()
    first_month = partitions.add_months(partitions.month_of(now), -2 * repeats())
    start, _ = partitions.bounds(first_month)
    for month in partitions.months_between(first_month, now):
        partitions.ensure_month(month)
    step = (now - start).total_seconds() / MESSAGES
    began = time.perf_counter()
    with connection.cursor() as cursor:
        args = {"length": CONVERSATION_LENGTH, "bots": BOTS, "prefix": "history-", "start": start, "step": step}
        load_messages(cursor, 0, MESSAGES, chunk=CHUNK, **args)
    seconds = time.perf_counter() - began
    print(f"bench: {MESSAGES} messages loaded in {seconds:.0f} s", file=sys.stderr)
    return {
        "seconds": seconds,
        "size": total_size(),
        "partitions": len(partitions.partitions()),
        "first_month": first_month,
    }


def history_reads(bot_ids: list[int]) -> dict[str, list[float]]:
    from bots.models import ChatMessage

    conversations = MESSAGES // CONVERSATION_LENGTH
    newest = ChatMessage.objects.order_by("-created_at", "-id")
    for _ in range(10):  # warm the connection and the cache's upper index pages
        list(newest.filter(bot_id=random.choice(bot_ids))[:100])
    reads: dict[str, list[float]] = {"conversation": [], "bot": []}
    for _ in range(repeats()):
        times: dict[str, list[float]] = {"conversation": [], "bot": []}
        for _ in range(READS):
            conversation = conversation_id(random.randrange(conversations))
            rows: list = []
            times["conversation"].append(
                timed(lambda c=conversation, r=rows: r.extend(newest.filter(conversation=c)[:50]))
            )
            assert len(rows) == CONVERSATION_LENGTH, len(rows)
            bot_id = random.choice(bot_ids)
            times["bot"].append(timed(lambda b=bot_id: list(newest.filter(bot_id=b)[:100])))
        for name, values in times.items():
            reads[name].append(percentile(values, 95) * 1000)
    return reads


def retention_runs() -> dict[str, list]:
    """Per run: drop the oldest month left, then delete the next one's rows and VACUUM them."""
    from django.conf import settings
    from django.db import connection

    from bots import partitions
    from bots.models import ChatMessage
    from ops.maintenance.pg import Target

    results: dict[str, list] = {key: [] for key in ("drop", "drop_rows", "drop_after", "before")}
    results |= {key: [] for key in ("delete", "delete_rows", "delete_after", "vacuum", "vacuum_after")}
    for _ in range(repeats()):
        oldest, following = partitions.partitions()[:2]
        results["before"].append(total_size())
        # What purge_messages does on a partitioned table: the months wholly before the cutoff.
        began = time.perf_counter()
        dropped = partitions.drop_expired(oldest.end)
        results["drop"].append(time.perf_counter() - began)
        assert [d.name for d in dropped] == [oldest.name], dropped
        results["drop_rows"].append(dropped[0].rows)
        results["drop_after"].append(total_size())

        # What it does on a plain table: batches of CHAT_RETENTION_BATCH rows older than the cutoff.
        began = time.perf_counter()
        deleted = 0
        while True:
            batch = ChatMessage.objects.filter(created_at__lt=following.end).order_by("pk")
            ids = list(batch.values_list("pk", flat=True)[: settings.CHAT_RETENTION_BATCH])
            if not ids:
                break
            deleted += ChatMessage.objects.filter(pk__in=ids).delete()[0]
        results["delete"].append(time.perf_counter() - began)
        results["delete_rows"].append(deleted)
        results["delete_after"].append(total_size())
        with Target.default().connect(autocommit=True) as conn:
            vacuum = f'VACUUM "{following.name}"'
            results["vacuum"].append(timed(lambda c=conn, v=vacuum: c.execute(v)))
        results["vacuum_after"].append(total_size())
        with connection.cursor() as cursor:  # the emptied month goes too: the next run starts alike
            cursor.execute(f'ALTER TABLE chat_messages DETACH PARTITION "{following.name}"')
            cursor.execute(f'DROP TABLE "{following.name}"')
        print(f"bench: a month dropped ({dropped[0].rows} rows) and one deleted ({deleted} rows)", file=sys.stderr)
    return results


def mib(values: list[int]) -> str:
    return spread([v / 1048576 for v in values], 1)


def report(loaded: dict, reads: dict[str, list[float]], retention: dict[str, list]) -> None:
    n = repeats()
    print("## Chat history, partitioned by month (bench/history_bench.py)\n")
    print(
        "A private PostgreSQL 15 cluster (shared server's defaults); chat_messages partitioned by month "
        f"(bots/partitions.py); every figure is the median (min to max) of {n} runs.\n"
    )
    print(
        f"### Reads at {MESSAGES:,} messages\n\n{BOTS} bots, conversations of {CONVERSATION_LENGTH} messages, "
        f"spread evenly from {loaded['first_month']:%Y-%m-01} until now over {loaded['partitions']} monthly "
        f"partitions (this month's and those ahead included), loaded in {loaded['seconds']:.0f} s "
        f"(secondary indexes dropped for the load and built again after it), "
        f"{loaded['size'] / 1024**3:.2f} GiB with indexes. Reads through the ORM as the product writes them "
        f"(newest first, `created_at DESC, id DESC`); p95 of {READS} reads of random conversations or bots "
        "per run. Target: p95 under 5 ms.\n"
    )
    print("| read | p95 ms | target |")
    print("| --- | ---: | --- |")
    for name, label in (("conversation", "a conversation's last 50"), ("bot", "a bot's last 100")):
        verdict = "met" if max(reads[name]) < 5 else ("met (median)" if sorted(reads[name])[n // 2] < 5 else "missed")
        print(f"| {label} | {spread(reads[name], 2)} | < 5 ms: {verdict} |")
    rows = spread([float(r) for r in retention["drop_rows"]], 0)
    print(
        f"\n### Retention of a month of messages\n\nThe oldest month's partition ({rows} rows) dropped as "
        "purge_messages does (exact count, then DETACH and DROP), against the next month's rows "
        f"deleted as a plain table's retention does (batches of CHAT_RETENTION_BATCH rows) and the VACUUM "
        "they need. Sizes: the whole table with its indexes, before and after.\n"
    )
    print("| way | rows | time s | table + indexes after, MiB | space back |")
    print("| --- | ---: | ---: | ---: | --- |")
    print(f"| before | | | {mib(retention['before'])} | |")
    print(
        f"| DROP the month's partition | {rows} | {spread(retention['drop'], 2)} | {mib(retention['drop_after'])} "
        "| at once |"
    )
    deleted = spread([float(r) for r in retention["delete_rows"]], 0)
    print(
        f"| DELETE the month's rows | {deleted} | {spread(retention['delete'], 1)} "
        f"| {mib(retention['delete_after'])} | none: dead rows until VACUUM |"
    )
    print(f"| + VACUUM of that month | | {spread(retention['vacuum'], 1)} | {mib(retention['vacuum_after'])} | |")
    print(f"\nLoad average at the end: {load_average()}.")


if __name__ == "__main__":
    raise SystemExit(main())
