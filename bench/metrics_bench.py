"""/metrics with 100 bots in the database, under gunicorn (multiprocess mode), timed per scrape.

Target (ARCHITECTURE.md): a scrape answers in < 100 ms with 100 bots. 200 scrapes one
after another, as Prometheus sends them; the first of each worker also waits (briefly)
for its first health results, so the p50/p95 reported are of the steady state after a
warm-up round.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deia.settings")

import django  # noqa: E402

django.setup()

from bench.support import gunicorn  # noqa: E402
from bots.models import Bot, Status  # noqa: E402

BOTS = 100
SCRAPES = 200
WORKERS = 3


def main() -> int:
    made = Bot.objects.bulk_create(
        Bot(
            name=f"metrics-bench-{i}",
            slug=f"metrics-bench-{i}",
            status=Status.RUNNING if i % 2 else Status.STOPPED,
            port=28000 + i if i % 2 else None,
            host="127.0.0.1",
        )
        for i in range(BOTS)
    )
    try:
        with gunicorn(GUNICORN_WORKERS=str(WORKERS)) as base, httpx.Client(timeout=10) as client:
            for _ in range(4 * WORKERS):  # every worker answers once and has its health results
                client.get(f"{base}/api/prometheus/targets")
                assert client.get(f"{base}/metrics").status_code == 200
            times, size = [], 0
            for _ in range(SCRAPES):
                started = time.perf_counter()
                response = client.get(f"{base}/metrics")
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
                size = len(response.content)
    finally:
        Bot.objects.filter(pk__in=[bot.pk for bot in made]).delete()
    times.sort()
    p50, p95 = statistics.median(times), times[int(0.95 * len(times)) - 1]
    print("## /metrics scrape (bench/metrics_bench.py)\n")
    print(f"gunicorn, {WORKERS} uvicorn workers (multiprocess mode), {BOTS} bots in the database, {SCRAPES} scrapes.\n")
    print("| p50 ms | p95 ms | max ms | body bytes |")
    print("| ---: | ---: | ---: | ---: |")
    print(f"| {p50:.1f} | {p95:.1f} | {times[-1]:.1f} | {size} |")
    print(f"\np95 {p95:.1f} ms (target < 100 ms): {'met' if p95 < 100 else 'NOT met'}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
