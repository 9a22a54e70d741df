"""Health endpoints: liveness touches nothing; /health/db is bounded by its timeout."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.procs import free_port

pytestmark = pytest.mark.django_db


def test_liveness_answers_without_touching_a_dependency(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_db_check_is_ok_on_a_healthy_database(client):
    response = client.get("/health/db")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["db"]["status"] == "ok"
    assert body["checks"]["db"]["latency_ms"] >= 0


def test_an_unknown_check_is_a_json_404(client):
    response = client.get("/health/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown check"


@pytest.mark.django_db(transaction=True)
def test_db_check_is_503_with_json_when_the_database_is_unreachable(gunicorn):
    closed = free_port()
    url = gunicorn(workers=1, DATABASE_URL=f"postgres://deia:deia@127.0.0.1:{closed}/deia")
    assert httpx.get(f"{url}/health").status_code == 200
    started = time.monotonic()
    response = httpx.get(f"{url}/health/db", timeout=10)
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"]["db"]["status"] == "error"
    assert "detail" in body["checks"]["db"]
    assert elapsed < 2.0 + 1.0  # the 2 s check timeout plus HTTP overhead


@pytest.mark.django_db(transaction=True)
def test_db_check_gives_up_on_a_database_that_never_answers(gunicorn, hanging_server):
    url = gunicorn(workers=1, DATABASE_URL=f"postgres://deia:deia@127.0.0.1:{hanging_server.port}/deia")
    started = time.monotonic()
    response = httpx.get(f"{url}/health/db", timeout=10)
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert "no answer within 2 s" in response.json()["checks"]["db"]["detail"]
    assert elapsed < 2.0 + 1.0
