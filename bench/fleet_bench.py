"""A hundred bots on one host, measured: memory, the reconcile pass, the scrape endpoints.

For each backend (echo, then ollama against the fake Ollama) it starts FLEET_BOTS bots
through the lifecycle's own start path (bots.lifecycle.transitions.start_bot, what a
worker runs, four at a time), has each answer one chat straight on its port, then
measures
- the proportional memory (Pss of /proc/<pid>/smaps_rollup) of every runner, and of the
  runners' template process when they were forked from one;
- the reconcile pass: reconcile_host (this host's check of every bot it runs) and
  reconcile_all (beat's fleet-wide pass), each BENCH_REPEATS times;
- GET /metrics and GET /api/prometheus/targets under gunicorn (default worker count),
  BENCH_REPEATS rounds of 100 requests one after another each: p95 per round;
then stops them all. It reports which start path the runners came from (exec of
`manage.py runbot`, or a fork of a pre-loaded template), found from each runner's parent.

It runs against a private PostgreSQL cluster (bench.support.private_postgres): every runner
holds a pooled connection, so a hundred of them would take the shared server's 100
max_connections from the other suites. The number they hold is reported too.
Targets (issue 14): total runner PSS < 2 GiB; reconcile pass < 1 s; both endpoints
< 100 ms p95.

    make bench BENCH=fleet_bench         (FLEET_BOTS=100 by default)
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import (  # noqa: E402
    gunicorn,
    load_average,
    percentile,
    repeats,
    rerun_in_private_postgres,
    runner_template,
    smoke,
    spread,
)

BOTS = int(os.environ.get("FLEET_BOTS", 3 if smoke() else 100))
REQUESTS = 10 if smoke() else 100
STARTERS = 4  # starts in flight at once, as a worker pool of four would run them
RECONCILE_BUDGET = 20.0  # seconds of repeated reconcile passes, to keep make bench within its time
GIB = 1024 * 1024  # kB per GiB


def pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise RuntimeError(f"no Pss for pid {pid}")


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def command_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()


def closing(fn):
    """fn for a pool thread: its database connection goes back to the pool after each call
    (a thread's connection otherwise stays checked out until the thread is collected)."""

    def run(*args):
        from django.db import connection

        try:
            return fn(*args)
        finally:
            connection.close()

    return run


def main() -> int:
    rerun = rerun_in_private_postgres(__file__)
    if rerun is not None:
        return rerun
    from tests.fakes.ollama import FakeOllama

    fake = FakeOllama().start()
    os.environ["OLLAMA_URL"] = fake.url  # the runners inherit it, as from a worker's environment
    os.environ["MAX_BOTS"] = str(BOTS + 10)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deia.settings")
    import django

    django.setup()
    from django.conf import settings

    low, high = settings.BOT_PORT_RANGE
    if high - low + 1 < BOTS:
        print(f"BOT_PORT_RANGE {low}-{high} has fewer than {BOTS} ports", file=sys.stderr)
        return 1
    try:
        with runner_template():
            results = {backend: fleet(backend, fake.url) for backend in ("echo", "ollama")}
    finally:
        fake.stop()
    report(results)
    return 0


def fleet(backend: str, ollama_url: str) -> dict:
    import httpx
    from django.db import connection

    from bots.lifecycle import reconcile, transitions
    from bots.models import Bot, DesiredState, Status

    model = "echo" if backend == "echo" else "llama3.2"
    bots = Bot.objects.bulk_create(
        Bot(name=f"fleet-{backend}-{i}", slug=f"fleet-{backend}-{i}", backend=backend, model_name=model)
        for i in range(BOTS)
    )
    ids = [bot.pk for bot in bots]
    result: dict = {"backend": backend}
    try:
        Bot.objects.filter(pk__in=ids).update(desired_state=DesiredState.RUNNING)
        print(f"bench: starting {BOTS} {backend} bots", file=sys.stderr)
        began = time.perf_counter()
        with ThreadPoolExecutor(STARTERS) as pool:
            outcomes = list(pool.map(closing(lambda pk: str(transitions.start_bot(pk))), ids))
        result["start_wall"] = time.perf_counter() - began
        running = list(Bot.objects.filter(pk__in=ids, status=Status.RUNNING))
        result["started"] = len(running)
        result["outcomes"] = {o: outcomes.count(o) for o in sorted(set(outcomes))}
        startups = [bot.startup_seconds for bot in running if bot.startup_seconds is not None]
        result["startup_p50"], result["startup_p95"] = percentile(startups, 50), percentile(startups, 95)

        def chat(bot: Bot) -> bool:
            response = httpx.post(
                f"http://{bot.address}/chat",
                json={"message": f"hello {bot.slug}"},
                headers={"X-Bot-Secret": bot.chat_secret},
                timeout=30,
            )
            return response.status_code == 200 and bool(response.json().get("reply"))

        with ThreadPoolExecutor(8) as pool:
            result["answered"] = sum(pool.map(chat, running))

        runner_pss = [pss_kb(bot.pid) for bot in running]
        parents = {parent_of(bot.pid) for bot in running}
        templates = parents - {os.getpid()}
        result["start_path"] = (
            "exec: one `manage.py runbot` interpreter per bot"
            if not templates
            else "fork of a pre-loaded template: " + ", ".join(f"pid {p} ({command_of(p)[:60]})" for p in templates)
        )
        result["runner_pss"] = runner_pss
        result["template_pss"] = sum(pss_kb(p) for p in templates)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            result["db_connections"] = cursor.fetchone()[0]

        result["reconcile_host"], result["reconcile_all"] = [], []
        budget = time.perf_counter() + RECONCILE_BUDGET
        for _ in range(repeats()):
            began = time.perf_counter()
            outcome = reconcile.reconcile_host(settings_hostname())
            result["reconcile_host"].append(time.perf_counter() - began)
            result["reconcile_host_outcome"] = {str(k): v for k, v in outcome.items()}
            began = time.perf_counter()
            reconcile.reconcile_all()
            result["reconcile_all"].append(time.perf_counter() - began)
            if time.perf_counter() > budget:
                break  # a pass a hundred times over its target needs no third run to say so

        result["metrics"], result["targets"] = scrape_latency()
        result["load"] = load_average()
    finally:
        print(f"bench: stopping the {backend} bots", file=sys.stderr)
        Bot.objects.filter(pk__in=ids).update(desired_state=DesiredState.STOPPED)
        began = time.perf_counter()
        with ThreadPoolExecutor(STARTERS) as pool:
            list(pool.map(closing(transitions.stop_bot), ids))
        result["stop_wall"] = time.perf_counter() - began
        Bot.objects.filter(pk__in=ids).delete()
    return result


def settings_hostname() -> str:
    from django.conf import settings

    return settings.HOSTNAME


def scrape_latency() -> tuple[list[float], list[float]]:
    """p95 (ms) of each round of REQUESTS sequential requests, for /metrics and the targets."""
    import httpx

    p95s: dict[str, list[float]] = {"/metrics": [], "/api/prometheus/targets": []}
    with gunicorn() as base, httpx.Client(timeout=10) as client:
        for path in p95s:  # every worker answers once first (imports, first health results)
            for _ in range(10):
                assert client.get(f"{base}{path}").status_code == 200, path
        for _ in range(repeats()):
            for path, rounds in p95s.items():
                times = []
                for _ in range(REQUESTS):
                    began = time.perf_counter()
                    response = client.get(f"{base}{path}")
                    times.append((time.perf_counter() - began) * 1000)
                    assert response.status_code == 200, path
                rounds.append(percentile(times, 95))
    return p95s["/metrics"], p95s["/api/prometheus/targets"]


def report(results: dict[str, dict]) -> None:
    n = repeats()
    print("## A hundred bots on one host (bench/fleet_bench.py)\n")
    print(
        f"{BOTS} bots of each backend started through the lifecycle's start path ({STARTERS} at a time, as a "
        "worker pool), each answering one chat, against a private PostgreSQL 15 cluster (max_connections "
        f"400); endpoint figures are median (min to max) of {n} runs, reconcile figures of up to {n} "
        f"(repeated while they take under {RECONCILE_BUDGET:.0f} s in all); endpoint latency is "
        f"the p95 of {REQUESTS} sequential requests per run, gunicorn with the default worker count.\n"
    )
    print("| measure | echo bots | ollama bots (fake Ollama) | target |")
    print("| --- | ---: | ---: | --- |")
    echo, ollama = results["echo"], results["ollama"]

    def row(label: str, fn, target: str = "") -> None:
        print(f"| {label} | {fn(echo)} | {fn(ollama)} | {target} |")

    row("start path", lambda r: r["start_path"])
    row("running / answered a chat", lambda r: f"{r['started']} / {r['answered']} of {BOTS}", "all")
    row("start outcomes", lambda r: ", ".join(f"{k} {v}" for k, v in r["outcomes"].items()))
    row("wall time to start all", lambda r: f"{r['start_wall']:.1f} s")
    row("start-up per bot p50 / p95", lambda r: f"{r['startup_p50']:.3f} / {r['startup_p95']:.3f} s")
    row("total PSS of the runners", lambda r: f"{sum(r['runner_pss']) / GIB:.2f} GiB", "< 2 GiB")
    row("PSS of the template process", lambda r: f"{r['template_pss'] / 1024:.1f} MiB" if r["template_pss"] else "none")
    row(
        "PSS per runner median (min to max)",
        lambda r: f"{spread([k / 1024 for k in r['runner_pss']])} MiB",
    )
    row("PostgreSQL connections held (runners and this bench)", lambda r: f"{r['db_connections']}", "")
    row(
        "reconcile_host pass (this host's bots)",
        lambda r: f"{spread(r['reconcile_host'], 3)} s ({len(r['reconcile_host'])} runs)",
        "< 1 s",
    )
    row(
        "reconcile_all pass (beat's fleet-wide pass)",
        lambda r: f"{spread(r['reconcile_all'], 3)} s ({len(r['reconcile_all'])} runs)",
        "< 1 s",
    )
    row("GET /metrics p95", lambda r: f"{spread(r['metrics'])} ms", "< 100 ms")
    row("GET /api/prometheus/targets p95", lambda r: f"{spread(r['targets'])} ms", "< 100 ms")
    row("wall time to stop all", lambda r: f"{r['stop_wall']:.1f} s")
    row("load average (1/5/15 min) at the end", lambda r: r["load"])
    print()
    verdicts = []
    for r in (echo, ollama):
        total = (sum(r["runner_pss"]) + r["template_pss"]) / GIB
        reconcile_s = max(statistics.median(r["reconcile_host"]), statistics.median(r["reconcile_all"]))
        endpoints = max(statistics.median(r["metrics"]), statistics.median(r["targets"]))
        verdicts.append(
            f"{r['backend']}: PSS with the template {total:.2f} GiB ({'met' if total < 2 else 'NOT met'}), "
            f"reconcile {reconcile_s:.3f} s ({'met' if reconcile_s < 1 else 'NOT met'}), "
            f"endpoints p95 {endpoints:.1f} ms ({'met' if endpoints < 100 else 'NOT met'})"
        )
    print("Targets: " + "; ".join(verdicts) + ".")
    held = max(echo["db_connections"], ollama["db_connections"])
    if held > 90:
        print(
            f"\nEvery runner keeps its pool's one connection open: {held} connections for {BOTS} bots, "
            "more than PostgreSQL's default max_connections (100) allows with the web and workers."
        )


if __name__ == "__main__":
    raise SystemExit(main())
