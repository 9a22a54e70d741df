"""Fixtures every suite shares: the real services, processes with finalizers, env for children.

Tests under tests/unit need no service; every other test is marked services and fails
(never skips) when PostgreSQL or Redis is missing.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings

from tests.support.procs import PYTHON, Proc, free_port, http_ok, wait_for
from tests.support.services import ServiceMissing, check_services, needs_services

# Each area's shared fixtures live in its own plugin module.
pytest_plugins = [
    "tests.plugins.lifecycle",
    "tests.plugins.observability",
    "tests.plugins.maintenance",
    "tests.plugins.browser",
    "tests.plugins.console",
]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test outside tests/unit needs the services: it carries the services marker."""
    for item in items:
        if needs_services(item.path):
            item.add_marker(pytest.mark.services)


@functools.cache
def services_problem() -> str | None:
    """Checked once per run: what is missing, in one line, or None."""
    try:
        check_services(settings.DATABASES["default"], settings.REDIS_URL)
    except ServiceMissing as exc:
        return str(exc)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked services fails, never skips, when one is missing (before its fixtures run)."""
    if item.get_closest_marker("services") and (problem := services_problem()):
        pytest.fail(problem, pytrace=False)


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def child_env(transactional_db, tmp_path: Path) -> dict[str, str]:
    """Environment for a child process (gunicorn, worker, runner) using the test database."""
    from django.db import connection

    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        DEIA_VAR_DIR=str(tmp_path / "var"),
        BACKUP_DIR=str(tmp_path / "backups"),
        PYTHONUNBUFFERED="1",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    (tmp_path / "var").mkdir(exist_ok=True)
    return env


TEARDOWN_GRACE = 1.0


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator:
    """spawn(args, env, name) starts a process in its own session, stopped at teardown."""
    procs: list[Proc] = []

    def start(args: list[str], env: dict[str, str], name: str = "proc") -> Proc:
        proc = Proc(args, env, tmp_path / f"{name}-{len(procs)}.log")
        procs.append(proc)
        return proc

    yield start
    for proc in reversed(procs):
        # The test is over: a second for a clean exit, then SIGKILL to its group (a Celery
        # worker's warm shutdown alone takes 2.5 s, and nothing is asserted any more).
        proc.stop(grace=TEARDOWN_GRACE)


@pytest.fixture
def gunicorn(spawn, child_env):
    """gunicorn(workers=2, **env) -> base URL of a real gunicorn serving the app."""

    def start(workers: int = 2, **extra_env: str) -> str:
        port = free_port()
        env = {**child_env, **extra_env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": str(workers)}
        proc = spawn(
            [PYTHON, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "deia.asgi:application"], env, "gunicorn"
        )
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ok(f"{url}/health") or not proc.running(), timeout=30, what="gunicorn /health")
        assert proc.running(), proc.output()
        start.proc = proc
        return url

    return start


@pytest.fixture
def hanging_server() -> Iterator:
    from tests.support.procs import HangingServer

    server = HangingServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def fresh_api_throttles() -> None:
    """Every test starts with empty API throttle counters and no cached overview or diagnosis
    (they live in the shared Redis; its broker keys stay)."""
    from django.core.cache import cache

    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern("throttle_*")
        cache.delete_pattern("ops:*")
    else:  # the unit tests' local-memory cache: private to this process
        cache.clear()
