"""/health/<check> tells strangers only status and latency; the metrics ACL and staff see why."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from bots.models import Backend, Bot
from tests.support.procs import PYTHON, ROOT, free_port

# The checks run in threads of their own: they see only committed rows.
pytestmark = pytest.mark.django_db(transaction=True)

OUTSIDE = "203.0.113.9"
PASSWORD = "llm-Pa55word"


@pytest.fixture
def failing_llm(settings, fake_ollama) -> None:
    """An Ollama URL with credentials whose model list answers 404: httpx quotes the URL."""
    settings.OLLAMA_URL = f"http://deia:{PASSWORD}@127.0.0.1:{fake_ollama.port}/no-such-prefix"
    Bot.objects.create(name="Llama", slug="llama", backend=Backend.OLLAMA, model_name="llama3.2")


def test_an_anonymous_caller_outside_the_acl_gets_status_and_latency_only(client, failing_llm):
    response = client.get("/health/llm", REMOTE_ADDR=OUTSIDE)
    assert response.status_code == 503
    assert response.json() == {
        "status": "error",
        "checks": {"llm": {"status": "error", "latency_ms": response.json()["checks"]["llm"]["latency_ms"]}},
    }
    ready = client.get("/health/ready", REMOTE_ADDR=OUTSIDE).json()
    assert all(set(check) == {"status", "latency_ms"} for check in ready["checks"].values())


def test_a_caller_the_metrics_acl_allows_gets_the_detail_without_the_password(client, failing_llm):
    response = client.get("/health/llm", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 503
    detail = response.json()["checks"]["llm"]["detail"]
    assert "404" in detail and "deia:***@127.0.0.1" in detail
    assert PASSWORD not in response.content.decode()


def test_the_metrics_token_unlocks_the_detail_from_anywhere(client, settings, failing_llm):
    settings.METRICS_TOKEN = "scrape-token-0123456789"
    response = client.get(
        "/health/llm", REMOTE_ADDR=OUTSIDE, headers={"Authorization": "Bearer scrape-token-0123456789"}
    )
    assert "detail" in response.json()["checks"]["llm"]


def test_a_logged_in_staff_user_gets_the_detail(client, django_user_model, failing_llm):
    staff = django_user_model.objects.create_user("op", password="x", is_staff=True)
    client.force_login(staff)
    body = client.get("/health/llm", REMOTE_ADDR=OUTSIDE).json()
    assert "404" in body["checks"]["llm"]["detail"]
    assert PASSWORD not in json.dumps(body)


def test_a_logged_in_user_who_is_not_staff_does_not(client, django_user_model, failing_llm):
    client.force_login(django_user_model.objects.create_user("viewer", password="x"))
    assert "detail" not in client.get("/health/llm", REMOTE_ADDR=OUTSIDE).json()["checks"]["llm"]


@pytest.mark.parametrize("path", ["/metrics", "/health/db"])
def test_a_non_ascii_bearer_token_is_refused_not_a_server_error(client, settings, path):
    settings.METRICS_TOKEN = "scrape-token-0123456789"
    client.raise_request_exception = False
    response = client.get(path, REMOTE_ADDR=OUTSIDE, headers={"Authorization": "Bearer é"})
    assert response.status_code in (200, 401, 403)
    assert response["Content-Type"] == "application/json"
    if path == "/metrics":
        assert response.status_code == 403 and response.json()["error"] == "forbidden"


DB_PASSWORD = "db-Pa55word"
REDIS_PASSWORD = "redis-Pa55word"
WEB_PASSWORD = "web-Pa55word"


def test_urls_with_passwords_in_failing_checks_leak_nowhere(gunicorn, child_env):
    closed = free_port()
    env = {
        "DATABASE_URL": f"postgres://deia:{DB_PASSWORD}@127.0.0.1:{closed}/deia",
        "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:{closed}/0",
        "LOG_LEVEL": "INFO",
    }
    url = gunicorn(workers=1, **env)
    ready = httpx.get(f"{url}/health/ready", timeout=15)  # from loopback: with the details
    assert ready.status_code == 503 and "detail" in ready.json()["checks"]["db"]
    diagnose = subprocess.run(
        [PYTHON, "manage.py", "diagnose", "--json"],
        # A web behind basic auth: diagnose names the URL it could not reach.
        env={
            **child_env,
            **env,
            "DIAGNOSE_WEB_URL": f"http://ops:{WEB_PASSWORD}@127.0.0.1:{closed}",
            "DIAGNOSE_TIMEOUT": "3",
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert diagnose.returncode == 2 and json.loads(diagnose.stdout)["status"] == "CRIT"
    assert f"http://ops:***@127.0.0.1:{closed}/health unreachable" in diagnose.stdout
    for text in (ready.text, gunicorn.proc.output(), diagnose.stdout, diagnose.stderr):
        assert DB_PASSWORD not in text and REDIS_PASSWORD not in text and WEB_PASSWORD not in text
