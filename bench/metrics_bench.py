"""/metrics with 100 bots in the database, under gunicorn (multiprocess mode), timed per scrape.

Target (ARCHITECTURE.md): a scrape answers in < 100 ms with 100 bots. 200 scrapes one
after another, as Prometheus sends them; the first of each worker also waits (briefly)
for its first health results, so the p50/p95 reported are of the steady state after a
warm-up round.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deia.settings")

import django  # noqa: E402

django.setup()

from bots.models import Bot, Status  # noqa: E402
from tests.support.procs import http_ok, wait_for  # noqa: E402

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
    port = 18991
    env = {**os.environ, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": str(WORKERS)}
    env["DEIA_VAR_DIR"] = tempfile.mkdtemp(prefix="deia-metrics-bench-")
    env["LOG_LEVEL"] = "WARNING"
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "deia.wsgi"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ok(f"{base}/health"), timeout=30, what="gunicorn /health")
        with httpx.Client(timeout=10) as client:
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
        times.sort()
        p50, p95 = statistics.median(times), times[int(0.95 * len(times)) - 1]
        print("## /metrics scrape (bench/metrics_bench.py)\n")
        print(
            f"gunicorn, {WORKERS} sync workers (multiprocess mode), {BOTS} bots in the database, {SCRAPES} scrapes.\n"
        )
        print("| p50 ms | p95 ms | max ms | body bytes |")
        print("| ---: | ---: | ---: | ---: |")
        print(f"| {p50:.1f} | {p95:.1f} | {times[-1]:.1f} | {size} |")
        print(f"\np95 {p95:.1f} ms (target < 100 ms): {'met' if p95 < 100 else 'NOT met'}.")
        return 0
    finally:
        os.killpg(web.pid, 15)
        web.wait(30)
        Bot.objects.filter(pk__in=[bot.pk for bot in made]).delete()
        shutil.rmtree(env["DEIA_VAR_DIR"], ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
