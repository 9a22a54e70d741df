"""Each benchmark scenario of issue 14 runs end to end at tiny sizes (BENCH_SMOKE) and
cleans up after itself. Not a timed test: no figure is asserted, only that the scenario
measured what it says and left nothing behind."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.support import PG_BIN, SHARED_TEMPLATE, private_postgres
from bots.models import Bot
from deia.apitokens.models import ApiToken
from tests.support.procs import PYTHON, ROOT


@pytest.fixture(scope="module")
def bench_postgres() -> Iterator[str]:
    """One private cluster, migrated once, for the scenarios that need one: each runs on a copy
    of its database (bench.support.database_copy) instead of a cluster of its own."""
    with private_postgres() as url:
        yield url


# Every process a scenario starts inherits this mark (other suites on the machine do not).
RUN_MARK = f"DEIA_BENCH_SMOKE_RUN={uuid.uuid4().hex}"


def run_scenario(name: str, env: dict[str, str], template_url: str = "") -> str:
    mark, value = RUN_MARK.split("=")
    env = {**env, "BENCH_SMOKE": "true", "BENCH_REPEATS": "1", "FLEET_BOTS": "2", mark: value}
    if template_url:
        env[SHARED_TEMPLATE] = template_url
    result = subprocess.run(
        [PYTHON, f"bench/{name}.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=280
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"(bench/{name}.py)" in result.stdout.splitlines()[0]
    return result.stdout


def bench_processes(shared_url: str = "") -> list[str]:
    """Command lines of the processes this module's scenarios started (private clusters and
    runners) still alive, and the databases they left on the shared cluster of `shared_url`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if RUN_MARK.encode() + b"\0" not in environ:
            continue
        if "deia-bench-pg-" in command or (b"DEIA_RUNNER_TAG=" in environ and b"/deia_bench_" in environ):
            found.append(command)
    if shared_url:
        base, template = shared_url.rsplit("/", 1)
        listed = subprocess.run(
            [str(PG_BIN / "psql"), f"{base}/postgres", "-qAtX", "-c", "SELECT datname FROM pg_database"],
            capture_output=True,
            text=True,
            check=True,
        )
        found += [f"database {name}" for name in listed.stdout.split() if name.startswith(f"{template}_")]
    return found


def test_the_api_scenario_compares_the_api_with_its_floor_and_removes_its_rows(child_env):
    bots_before = set(Bot.objects.values_list("pk", flat=True))
    out = run_scenario("api_bench", child_env)
    for row in ("bare view", "GET /api/bots (saturated)", "metrics middleware off", "API/bare throughput"):
        assert row in out
    assert "In-process, CPU ms" in out
    assert set(Bot.objects.values_list("pk", flat=True)) == bots_before
    assert not ApiToken.objects.exists()


def test_the_fleet_scenario_starts_chats_with_and_stops_every_bot(child_env, bench_postgres):
    out = run_scenario("fleet_bench", child_env, bench_postgres)
    assert "| 2 / 2 of 2 | 2 / 2 of 2 |" in out  # both backends' bots running and answering
    assert "| start path | exec" in out or "| start path | fork" in out
    assert "reconcile_host pass" in out and "GET /api/prometheus/targets p95" in out
    assert bench_processes(bench_postgres) == []


def test_the_growth_scenario_loads_reads_and_drops_messages(child_env, bench_postgres):
    out = run_scenario("growth_bench", child_env, bench_postgres)
    assert "| 3 | " in out and "| 10 | " in out  # bots in the database, both sizes
    assert "| 2,000 | " in out and "| 10,000 | " in out  # messages, both sizes, exact count matched
    assert out.count("| 1.000 |") == 2  # the estimate equals the exact count right after ANALYZE
    assert bench_processes(bench_postgres) == []


def test_the_history_scenario_reads_drops_and_deletes_a_month(child_env, bench_postgres):
    out = run_scenario("history_bench", child_env, bench_postgres)
    assert "| a conversation's last 50 | " in out and "| a bot's last 100 | " in out
    assert "| DROP the month's partition | " in out and "| DELETE the month's rows | " in out
    assert bench_processes(bench_postgres) == []


def test_the_failover_scenario_moves_every_bot_of_a_killed_host(child_env, bench_postgres):
    out = run_scenario("failover_bench", child_env, bench_postgres)
    assert "| bots | kill to all running on B |" in out
    assert "| 2 | " in out  # the smoke size: two bots moved, timed
    assert bench_processes(bench_postgres) == []


@pytest.mark.parametrize("name", ["nope", "nope_bench"])
def test_make_bench_refuses_an_unknown_scenario_in_one_line(name):
    result = subprocess.run(
        [PYTHON, "bench/run.py", name], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    known = " ".join(sorted(p.stem for p in (ROOT / "bench").glob("*_bench.py")))
    assert result.stderr.strip().splitlines() == [f"bench: no scenario nope_bench (there are: {known})"]
