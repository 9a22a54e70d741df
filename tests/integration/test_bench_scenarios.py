"""Each benchmark scenario of issue 14 runs end to end at tiny sizes (BENCH_SMOKE) and
cleans up after itself. Not a timed test: no figure is asserted, only that the scenario
measured what it says and left nothing behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bots.models import Bot
from deia.apitokens.models import ApiToken
from tests.support.procs import PYTHON, ROOT


def run_scenario(name: str, env: dict[str, str]) -> str:
    env = {**env, "BENCH_SMOKE": "true", "BENCH_REPEATS": "1", "FLEET_BOTS": "2"}
    result = subprocess.run(
        [PYTHON, f"bench/{name}.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=280
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"(bench/{name}.py)" in result.stdout.splitlines()[0]
    return result.stdout


def bench_processes() -> list[str]:
    """Command lines of processes a scenario starts: its private cluster and runners."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if "deia-bench-pg-" in command or (b"DEIA_RUNNER_TAG=" in environ and b"/deia_bench_" in environ):
            found.append(command)
    return found


def test_the_api_scenario_compares_the_api_with_its_floor_and_removes_its_rows(child_env):
    bots_before = set(Bot.objects.values_list("pk", flat=True))
    out = run_scenario("api_bench", child_env)
    for row in ("bare view", "GET /api/bots (saturated)", "metrics middleware off", "API/bare throughput"):
        assert row in out
    assert "In-process, CPU ms" in out
    assert set(Bot.objects.values_list("pk", flat=True)) == bots_before
    assert not ApiToken.objects.exists()


def test_the_fleet_scenario_starts_chats_with_and_stops_every_bot(child_env):
    out = run_scenario("fleet_bench", child_env)
    assert "| 2 / 2 of 2 | 2 / 2 of 2 |" in out  # both backends' bots running and answering
    assert "| start path | exec" in out or "| start path | fork" in out
    assert "reconcile_host pass" in out and "GET /api/prometheus/targets p95" in out
    assert bench_processes() == []


def test_the_growth_scenario_loads_reads_and_drops_messages(child_env):
    out = run_scenario("growth_bench", child_env)
    assert "| 3 | " in out and "| 10 | " in out  # bots in the database, both sizes
    assert "| 2,000 | " in out and "| 10,000 | " in out  # messages, both sizes, exact count matched
    assert out.count("| 1.000 |") == 2  # the estimate equals the exact count right after ANALYZE
    assert bench_processes() == []


def test_the_history_scenario_reads_drops_and_deletes_a_month(child_env):
    out = run_scenario("history_bench", child_env)
    assert "| a conversation's last 50 | " in out and "| a bot's last 100 | " in out
    assert "| DROP the month's partition | " in out and "| DELETE the month's rows | " in out
    assert bench_processes() == []


def test_the_failover_scenario_moves_every_bot_of_a_killed_host(child_env):
    out = run_scenario("failover_bench", child_env)
    assert "| bots | kill to all running on B |" in out
    assert "| 2 | " in out  # the smoke size: two bots moved, timed
    assert bench_processes() == []


@pytest.mark.parametrize("name", ["nope", "nope_bench"])
def test_make_bench_refuses_an_unknown_scenario_in_one_line(name):
    result = subprocess.run(
        [PYTHON, "bench/run.py", name], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    known = " ".join(sorted(p.stem for p in (ROOT / "bench").glob("*_bench.py")))
    assert result.stderr.strip().splitlines() == [f"bench: no scenario nope_bench (there are: {known})"]
