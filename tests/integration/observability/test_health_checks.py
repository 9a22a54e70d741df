"""Every health endpoint's 503 path with its dependency stopped, and bounded answers when it hangs."""

from __future__ import annotations

import re
import subprocess
import time

import httpx
import pytest
from django.db import connections

from bots.models import Backend, Bot
from ops import health
from tests.support.procs import PYTHON, ROOT, free_port

pytestmark = pytest.mark.django_db(transaction=True)

# Each check is bounded by HEALTH_CHECK_TIMEOUT (2 s); /health/ready must answer within 3 s.
READY_DEADLINE = 3.0


def get(url: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.get(url, timeout=10)
    return response, time.monotonic() - started


def assert_failed(response: httpx.Response, check: str) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"][check]["status"] == "error"
    assert body["checks"][check]["detail"]
    assert body["checks"][check]["latency_ms"] >= 0


def closed_url(scheme: str) -> str:
    return f"{scheme}://127.0.0.1:{free_port()}"


def test_every_check_is_ok_when_every_dependency_answers(gunicorn):
    url = gunicorn(workers=1)
    response, _ = get(f"{url}/health/ready")
    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    assert set(checks) == {"db", "cache", "broker", "llm"}
    assert all(check["status"] == "ok" for check in checks.values())


def test_cache_check_is_503_when_redis_is_stopped(gunicorn, settings):
    url = gunicorn(workers=1, REDIS_URL=f"{closed_url('redis')}/0", CELERY_BROKER_URL=settings.CELERY_BROKER_URL)
    response, elapsed = get(f"{url}/health/cache")
    assert_failed(response, "cache")
    assert elapsed < READY_DEADLINE
    assert get(f"{url}/health/broker")[0].status_code == 200  # the broker is still the real Redis
    assert_failed(get(f"{url}/health/ready")[0], "cache")


def test_broker_check_is_503_when_the_broker_is_stopped(gunicorn):
    url = gunicorn(workers=1, CELERY_BROKER_URL=f"{closed_url('redis')}/0")
    response, elapsed = get(f"{url}/health/broker")
    assert_failed(response, "broker")
    assert elapsed < READY_DEADLINE
    assert get(f"{url}/health/cache")[0].status_code == 200
    assert_failed(get(f"{url}/health/ready")[0], "broker")


def test_llm_check_is_503_when_the_ollama_server_is_stopped(gunicorn):
    Bot.objects.create(name="llama", slug="llama", backend=Backend.OLLAMA)
    url = gunicorn(workers=1, OLLAMA_URL=closed_url("http"))
    response, elapsed = get(f"{url}/health/llm")
    assert_failed(response, "llm")
    assert "ConnectError" in response.json()["checks"]["llm"]["detail"]
    assert elapsed < READY_DEADLINE
    assert_failed(get(f"{url}/health/ready")[0], "llm")


def test_llm_check_is_ok_when_no_bot_needs_an_llm_server(gunicorn):
    Bot.objects.create(name="echo", slug="echo", backend=Backend.ECHO)
    url = gunicorn(workers=1, OLLAMA_URL=closed_url("http"))
    response, _ = get(f"{url}/health/llm")
    assert response.status_code == 200
    assert response.json()["checks"]["llm"]["detail"] == "no bot uses an LLM server"


def test_ready_is_503_when_the_database_is_stopped(gunicorn):
    url = gunicorn(workers=1, DATABASE_URL=f"postgres://deia:deia@127.0.0.1:{free_port()}/deia")
    response, elapsed = get(f"{url}/health/ready")
    assert_failed(response, "db")
    assert elapsed < READY_DEADLINE
    assert response.json()["checks"]["cache"]["status"] == "ok"


def test_ready_answers_within_3_s_when_every_dependency_hangs(gunicorn, hanging_server):
    hang = f"127.0.0.1:{hanging_server.port}"
    url = gunicorn(
        workers=1,
        DATABASE_URL=f"postgres://deia:deia@{hang}/deia",
        REDIS_URL=f"redis://{hang}/0",
        CELERY_BROKER_URL=f"redis://{hang}/0",
        OLLAMA_URL=f"http://{hang}",
    )
    response, elapsed = get(f"{url}/health/ready")
    assert elapsed < READY_DEADLINE, elapsed
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert {name: check["status"] for name, check in checks.items()} == dict.fromkeys(
        ("db", "cache", "broker", "llm"), "error"
    )
    # The probe stays bounded when asked again while the first threads still hang.
    response, elapsed = get(f"{url}/health/ready")
    assert elapsed < READY_DEADLINE, elapsed
    assert response.status_code == 503


def test_llm_check_gives_up_on_an_ollama_server_that_never_answers(gunicorn, hanging_server):
    Bot.objects.create(name="llama", slug="llama", backend=Backend.OLLAMA)
    url = gunicorn(workers=1, OLLAMA_URL=f"http://127.0.0.1:{hanging_server.port}")
    response, elapsed = get(f"{url}/health/llm")
    assert_failed(response, "llm")
    assert elapsed < READY_DEADLINE


def test_metrics_answers_quickly_while_a_dependency_hangs(gunicorn, hanging_server):
    Bot.objects.create(name="llama", slug="llama", backend=Backend.OLLAMA)
    url = gunicorn(workers=1, OLLAMA_URL=f"http://127.0.0.1:{hanging_server.port}")
    # The first scrape of a process waits briefly for its first health results, no longer.
    response, elapsed = get(f"{url}/metrics")
    assert response.status_code == 200
    assert elapsed < 1.5, elapsed
    response, elapsed = get(f"{url}/metrics")
    assert elapsed < 1.5, elapsed


def test_the_redis_broker_check_itself_gives_up_on_a_broker_that_never_answers(settings, hanging_server, monkeypatch):
    from deia.celery import app

    settings.HEALTH_CHECK_TIMEOUT = 0.5
    monkeypatch.setattr(app.conf, "broker_url", f"redis://127.0.0.1:{hanging_server.port}/0")
    started = time.monotonic()
    result = health.check_broker()
    assert not result.ok and re.search(r"[Tt]imeout|timed out", result.detail), result.detail
    # Not only abandoned by run_checks: the check's own thread ends, too.
    assert time.monotonic() - started < 1.5


def test_checks_give_their_database_connections_back_to_the_pool():
    Bot.objects.create(name="llama", slug="echo", backend=Backend.ECHO)
    pool = connections["default"].pool
    for _ in range(2 * pool.max_size):
        assert all(result.ok for result in health.run_checks(["db", "llm"])), "pool ran dry"
    stats = pool.get_stats()
    assert stats["pool_size"] - stats["pool_available"] <= 1  # at most this test's own connection


def test_importing_the_checks_loads_the_client_libraries_before_any_check_thread_runs(child_env):
    # Two check threads importing redis for the first time at once deadlock on its import
    # locks (seen as a 503 from the first /health/ready of a fresh worker).
    script = (
        "import sys, django; django.setup(); import ops.health; "
        "print(all(m in sys.modules for m in ('redis.connection', 'django_redis.client.default', 'celery')))"
    )
    result = subprocess.run([PYTHON, "-c", script], env=child_env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "True", result.stderr
