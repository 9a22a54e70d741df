"""`make bench`: run every benchmark and write docs/PERFORMANCE.md.

Each benchmark is a script in bench/ named *_bench.py that prints a Markdown section to
stdout (and its progress to stderr). This runner migrates the benchmark database, runs
them one after another, and writes their sections under a header with the machine, the
versions, the commands and the load; each section gets how long it ran and the load
average before and after it (the machine may be shared: the load says how far to trust
a figure). bench/CHANGES.md, the before and after of each change made for performance,
is copied in as it is. Targets are checked here, never by timed assertions in tests.

    make bench                      every scenario
    make bench BENCH=api_bench      one (or several, space-separated; "api" works too)
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "PERFORMANCE.md"
CHANGES = ROOT / "bench" / "CHANGES.md"
# The issue's own figures first; the rest after them, by name.
ORDER = (
    *("api_bench", "fleet_bench", "growth_bench", "history_bench", "failover_bench"),
    *("bot_startup_bench", "runner_bench", "chat_bench", "metrics_bench"),
)
PACKAGES = (
    "Django",
    "djangorestframework",
    "gunicorn",
    "uvicorn",
    "a2wsgi",
    "psycopg",
    "psycopg-pool",
    "redis",
    "django-redis",
    "prometheus-client",
    "django-prometheus",
)

from bench.support import load_average, repeats  # noqa: E402


def machine() -> str:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    mem_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    return f"{os.cpu_count()} cores ({cpu}), {mem_kb / 1024 / 1024:.1f} GiB, Linux {platform.release()}"


def versions() -> str:
    parts = [f"Python {platform.python_version()}"]
    for name in PACKAGES:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    parts.append(f"PostgreSQL {server_version('SHOW server_version')}")
    parts.append(f"Redis {redis_version()}")
    if shutil.which("wrk"):
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()
        parts.append(" ".join(wrk[:2]) if wrk else "wrk")
    return ", ".join(parts)


def server_version(sql: str) -> str:
    import psycopg

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return "?"
    with psycopg.connect(url, connect_timeout=5) as conn:
        return str(conn.execute(sql).fetchone()[0]).split()[0]


def redis_version() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        return "?"
    import redis

    return redis.Redis.from_url(url, socket_timeout=5).info("server")["redis_version"]


def previous_sections() -> dict[str, str]:
    """The sections of the current docs/PERFORMANCE.md, by the script named in their heading."""
    if not OUT.exists():
        return {}
    sections = {}
    for chunk in OUT.read_text().split("\n## ")[1:]:
        match = re.search(r"\(bench/(\w+\.py)\)", chunk.splitlines()[0])
        if match:
            sections[match.group(1)] = "## " + chunk.strip() + "\n"
    return sections


def ordered(names) -> list[str]:
    rank = {f"{stem}.py": i for i, stem in enumerate(ORDER)}
    return sorted(names, key=lambda name: (rank.get(name, len(ORDER)), name))


def selected(only: list[str]) -> list[Path]:
    wanted = {name if name.endswith("_bench") else f"{name}_bench" for name in only}
    scripts = [p for p in (ROOT / "bench").glob("*_bench.py") if not wanted or p.stem in wanted]
    unknown = wanted - {p.stem for p in scripts}
    if unknown:
        known = " ".join(sorted(p.stem for p in (ROOT / "bench").glob("*_bench.py")))
        raise SystemExit(f"bench: no scenario {' '.join(sorted(unknown))} (there are: {known})")
    return [ROOT / "bench" / name for name in ordered(p.name for p in scripts)]


def main() -> int:
    only = " ".join(sys.argv[1:]).split()
    scripts = selected(only)
    subprocess.run([sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, check=True)
    # A subset run (make bench BENCH=...) replaces only its own sections.
    sections = previous_sections() if only else {}
    failed = []
    load_at_start = load_average()
    began_all = time.monotonic()
    for script in scripts:
        print(f"bench: running {script.name}", file=sys.stderr)
        before, began = load_average(), time.monotonic()
        result = subprocess.run([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        footer = (
            f"\n*{script.name} ran in {time.monotonic() - began:.0f} s on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} "
            f"UTC; load average (1/5/15 min) before {before}, after {load_average()}.*\n"
        )
        if result.returncode != 0:
            failed.append(script.name)
            sections[script.name] = f"## {script.stem} (bench/{script.name})\n\nFAILED (exit {result.returncode})\n"
        else:
            sections[script.name] = result.stdout.strip() + "\n" + footer
    scope = f"`make bench BENCH={' '.join(only)}`: only those sections were re-measured" if only else "every scenario"
    header = (
        "# Performance\n\n"
        f"Written {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `make bench` ({scope}"
        f", {time.monotonic() - began_all:.0f} s; load average before {load_at_start}, after {load_average()}).\n\n"
        f"- Machine: {machine()}.\n"
        f"- Versions: {versions()}.\n"
        "- Commands: `make bench` runs every scenario (PostgreSQL 15 and Redis started by "
        "scripts/services.sh); `make bench BENCH=<name>` runs one (`api_bench`, `fleet_bench`, ...) and "
        "replaces only its section; `BENCH_REPEATS=N` sets how often each scenario repeats "
        f"(this run: {repeats()}). The fleet and growth scenarios start a private PostgreSQL cluster of their own.\n"
        "- Figures are the median (min to max) of the repeats unless a section says otherwise. Targets are the "
        "project's design targets for a 2-core machine. A load average above the core count means other "
        "processes were competing for the CPU while that section ran: its figures are then upper bounds.\n"
    )
    changes = CHANGES.read_text().strip() + "\n" if CHANGES.exists() else ""
    body = "\n".join(sections[name] for name in ordered(sections))
    OUT.write_text(header + "\n" + changes + "\n" + body)
    print(f"bench: wrote {OUT.relative_to(ROOT)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
