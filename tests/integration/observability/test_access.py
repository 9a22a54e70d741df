"""/metrics and /api/prometheus/targets answer the allowlist or the bearer token, and nobody else."""

from __future__ import annotations

import httpx
import pytest

from bots.models import Bot, Status

pytestmark = pytest.mark.django_db

PROTECTED = ("/metrics", "/api/prometheus/targets")
OUTSIDE = "203.0.113.9"
TOKEN = "scrape-token-0123456789"


@pytest.fixture
def token(settings) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


@pytest.mark.parametrize("path", PROTECTED)
def test_an_address_outside_the_allowlist_is_refused_with_json(client, path):
    response = client.get(path, REMOTE_ADDR=OUTSIDE)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


@pytest.mark.parametrize("path", PROTECTED)
def test_loopback_is_allowed_by_default(client, path):
    assert client.get(path, REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get(path, REMOTE_ADDR="::1").status_code == 200


@pytest.mark.parametrize("path", PROTECTED)
def test_the_bearer_token_is_accepted_from_anywhere(client, token, path):
    response = client.get(path, REMOTE_ADDR=OUTSIDE, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


@pytest.mark.parametrize("path", PROTECTED)
def test_a_wrong_token_is_refused(client, token, path):
    response = client.get(path, REMOTE_ADDR=OUTSIDE, headers={"Authorization": "Bearer not-the-token"})
    assert response.status_code == 403
    response = client.get(path, REMOTE_ADDR=OUTSIDE, headers={"Authorization": token})  # no Bearer
    assert response.status_code == 403


def test_no_token_is_accepted_when_none_is_configured(client, settings):
    settings.METRICS_TOKEN = None
    response = client.get("/metrics", REMOTE_ADDR=OUTSIDE, headers={"Authorization": "Bearer "})
    assert response.status_code == 403


def test_a_network_in_the_allowlist_is_allowed(client, settings):
    import ipaddress

    settings.METRICS_ALLOWED_CIDRS = [ipaddress.ip_network("203.0.113.0/24")]
    assert client.get("/metrics", REMOTE_ADDR=OUTSIDE).status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


def test_x_forwarded_for_is_ignored_without_trusted_proxies(client, settings):
    settings.TRUSTED_PROXIES = []
    response = client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert response.status_code == 403


def test_behind_a_trusted_proxy_the_address_it_saw_decides(client, settings):
    import ipaddress

    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
    # The client prepends a forged loopback; the proxy appends the address it really saw.
    forged = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"127.0.0.1, {OUTSIDE}")
    assert forged.status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 200


def test_service_discovery_is_an_empty_list_without_running_bots(client):
    Bot.objects.create(name="idle", slug="idle", status=Status.STOPPED)
    response = client.get("/api/prometheus/targets")
    assert response.status_code == 200
    assert response.json() == []


def test_service_discovery_lists_running_bots_in_the_http_sd_format(client):
    one = Bot.objects.create(name="one", slug="one", status=Status.RUNNING, port=41001, host="worker-a")
    two = Bot.objects.create(
        name="two", slug="two", status=Status.RUNNING, port=41002, host="worker-b", advertise_host="10.0.0.7"
    )
    Bot.objects.create(name="starting", slug="starting", status=Status.STARTING, port=41003, host="worker-a")
    response = client.get("/api/prometheus/targets")
    assert response["Content-Type"] == "application/json"
    assert sorted(response.json(), key=lambda g: g["labels"]["bot"]) == [
        {"targets": ["worker-a:41001"], "labels": {"bot": "one", "bot_id": str(one.pk), "host": "worker-a"}},
        {"targets": ["10.0.0.7:41002"], "labels": {"bot": "two", "bot_id": str(two.pk), "host": "worker-b"}},
    ]


def test_service_discovery_is_one_query_whatever_the_number_of_bots(client, django_assert_num_queries):
    Bot.objects.bulk_create(
        Bot(name=f"b{i}", slug=f"b{i}", status=Status.RUNNING, port=42000 + i, host="h") for i in range(50)
    )
    with django_assert_num_queries(1):
        response = client.get("/api/prometheus/targets")
    assert len(response.json()) == 50


@pytest.mark.django_db(transaction=True)
def test_through_gunicorn_loopback_outside_the_allowlist_needs_the_token(gunicorn):
    url = gunicorn(workers=1, METRICS_ALLOWED_CIDRS="10.0.0.0/8", METRICS_TOKEN=TOKEN)
    for path in PROTECTED:
        refused = httpx.get(f"{url}{path}", timeout=10)
        assert refused.status_code == 403
        assert refused.json()["error"] == "forbidden"
        allowed = httpx.get(f"{url}{path}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert allowed.status_code == 200
