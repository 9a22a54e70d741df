"""The suite runs in parts: `make test-unit` needs no service, every other test fails without one."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from tests.support.procs import PYTHON, ROOT, free_port

# A child make must not inherit the make that runs this suite (its PYTEST_ARGS, TEST_DB...).
MAKE_VARIABLES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_a_test_outside_tests_unit_is_marked_services(request):
    assert request.node.get_closest_marker("services") is not None


@pytest.mark.parametrize(
    ("variable", "url", "named"),
    [
        ("DATABASE_URL", "postgres://deia:deia@127.0.0.1:{port}/deia", "PostgreSQL at 127.0.0.1:{port}"),
        ("REDIS_URL", "redis://127.0.0.1:{port}/0", "Redis at redis://127.0.0.1:{port}/0"),
    ],
    ids=["postgresql", "redis"],
)
def test_a_missing_service_fails_a_services_test_in_one_line_and_never_skips_it(variable, url, named):
    port = free_port()  # released again: nothing listens there
    env = {**os.environ, variable: url.format(port=port)}
    test = f"{Path(__file__).relative_to(ROOT)}::test_a_test_outside_tests_unit_is_marked_services"
    result = run([PYTHON, "-m", "pytest", "-q", test], env)
    assert result.returncode == 1, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\b1 error\b", summary) and "passed" not in summary and "skipped" not in summary, summary
    assert f"\n{named.format(port=port)} is not answering: " in result.stdout, result.stdout


def test_make_test_unit_passes_with_postgresql_and_redis_out_of_reach(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in MAKE_VARIABLES}
    env.update(
        DATABASE_URL=f"postgres://deia:deia@127.0.0.1:{port}/deia",
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        CELERY_BROKER_URL=f"redis://127.0.0.1:{port}/0",
    )
    first, last = settings.BOT_PORT_RANGE
    result = run(
        ["make", "-s", "test-unit", "PYTEST_ARGS=-q", f"UNIT_VAR_DIR={tmp_path}", f"TEST_BOT_PORTS={first}-{last}"], env
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in [\d.]+s( \([\d:]+\))?", summary), summary
