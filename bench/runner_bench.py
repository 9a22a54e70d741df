"""Benchmark of one bot runner: message-path overhead and resident memory (not a test).

Starts a real `manage.py runbot` for a throw-away echo bot (a 0 ms LLM), then measures
- the /chat round trip seen by a keep-alive client: 500 sequential chats, then
  4 clients x 100 chats at once (p50/p95/p99, and throughput for the concurrent run);
- the runner's VmRSS after start and after 200 chats.
Prints a Markdown table. Needs a migrated database in DATABASE_URL, e.g.

    env DATABASE_URL=postgres://deia:deia@127.0.0.1:5432/deia .venv/bin/python bench/runner_bench.py
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.support import start_runner, stop_process_group  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deia.settings")

SEQUENTIAL = 500
RSS_AFTER = 200
CLIENTS, PER_CLIENT = 4, 100


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def pss_mib(pid: int) -> float:
    """Proportional set size: shared library pages split between the processes using them."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no Pss for pid {pid}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


SERVER_MS: list[float] = []  # latency_ms the runner itself reports (receipt to LLM answer)


HEADERS: dict[str, str] = {}  # the runner's secret, set once it is started


def chat(client: httpx.Client, url: str, conversation: str | None, i: int) -> float:
    payload = {"message": f"benchmark message number {i}"}
    if conversation:
        payload["conversation"] = conversation
    began = time.perf_counter()
    response = client.post(f"{url}/chat", json=payload, headers=HEADERS)
    elapsed = (time.perf_counter() - began) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"chat {i} failed: {response.status_code} {response.text}")
    SERVER_MS.append(response.json()["latency_ms"])
    return elapsed


def main() -> int:
    import django

    django.setup()
    from bots.models import Backend, Bot

    print("bench: starting a runner for an echo bot", file=sys.stderr)
    bot = Bot.objects.create(
        name=f"bench-{os.getpid()}", slug=f"bench-{os.getpid()}", backend=Backend.ECHO, model_name="echo"
    )
    proc = None
    try:
        started = time.perf_counter()
        proc, url, headers = start_runner(bot.pk)
        HEADERS.update(headers)
        start_seconds = time.perf_counter() - started
        rss_start = rss_mib(proc.pid)
        with httpx.Client(timeout=30) as client:
            warm_up = client.post(f"{url}/chat", json={"message": "warm up"}, headers=HEADERS)
            conversation = warm_up.json()["conversation"]
            for i in range(20):
                chat(client, url, conversation, i)
            health = []
            for _ in range(SEQUENTIAL):
                began = time.perf_counter()
                client.get(f"{url}/health")
                health.append((time.perf_counter() - began) * 1000)
            SERVER_MS.clear()
            sequential = []
            for i in range(SEQUENTIAL):
                sequential.append(chat(client, url, conversation, i))
                if i + 1 == RSS_AFTER:
                    rss_after = rss_mib(proc.pid)

        concurrent: list[float] = []
        lock = threading.Lock()

        def worker(n: int) -> None:
            with httpx.Client(timeout=30) as client:
                times = [chat(client, url, None, n * PER_CLIENT + i) for i in range(PER_CLIENT)]
            with lock:
                concurrent.extend(times)

        began = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - began
        rss_end, pss_end = rss_mib(proc.pid), pss_mib(proc.pid)
    finally:
        if proc is not None:
            stop_process_group(proc)
        bot.delete()

    seq = [percentile(sequential, q) for q in (50, 95, 99)]
    conc = [percentile(concurrent, q) for q in (50, 95, 99)]
    print("## Bot runner (bench/runner_bench.py)\n")
    print(
        "One `manage.py runbot` (asyncio on uvicorn) for an echo bot (a 0 ms LLM), PostgreSQL storage; "
        "round trips measured by keep-alive httpx clients on the same machine.\n"
    )
    print("| measure | p50 ms | p95 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| POST /chat, {SEQUENTIAL} sequential | {seq[0]:.2f} | {seq[1]:.2f} | {seq[2]:.2f} |")
    print(f"| POST /chat, {CLIENTS} clients x {PER_CLIENT} at once | {conc[0]:.2f} | {conc[1]:.2f} | {conc[2]:.2f} |")
    h50, h95, h99 = (percentile(health, q) for q in (50, 95, 99))
    print(f"| GET /health, {SEQUENTIAL} sequential (HTTP alone) | {h50:.2f} | {h95:.2f} | {h99:.2f} |")
    s50, s95, s99 = (percentile(SERVER_MS, q) for q in (50, 95, 99))
    print(f"| latency_ms the runner stored (receipt to LLM answer) | {s50:.0f} | {s95:.0f} | {s99:.0f} |")
    print()
    print("| measure | value |")
    print("| --- | ---: |")
    print(f"| start to a healthy /health | {start_seconds * 1000:.0f} ms |")
    print(f"| concurrent throughput | {len(concurrent) / wall:.0f} chats/s |")
    print(f"| VmRSS after start | {rss_start:.1f} MiB |")
    print(f"| VmRSS after {RSS_AFTER} chats | {rss_after:.1f} MiB |")
    print(f"| VmRSS after {SEQUENTIAL + 21 + CLIENTS * PER_CLIENT} chats | {rss_end:.1f} MiB |")
    print(f"| PSS at the end | {pss_end:.1f} MiB |")
    verdict = "met" if seq[1] < 20 else "NOT met"
    print(f"\nMessage-path overhead p95 {seq[1]:.2f} ms (target < 20 ms): {verdict}. ", end="")
    fleet = rss_end * 100 / 1024
    print(f"100 runners at this size: {fleet:.1f} GiB (target within 8 GiB): {'met' if fleet <= 8 else 'NOT met'}.")
    print(f"Sequential mean {statistics.mean(sequential):.2f} ms.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
