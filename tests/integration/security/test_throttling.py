"""API throttles: per user and per anonymous address, shared by processes, 429 JSON with Retry-After."""

from __future__ import annotations

import ipaddress

import httpx
import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from bots.access import OPERATE
from tests.support.perms import grant
from tests.support.tokens import api_key, token_client

pytestmark = pytest.mark.django_db

OUTSIDE = "203.0.113.9"


def assert_throttled(response, within: int = 60) -> None:
    assert response.status_code == 429
    body = response.json()
    assert body["error"] == "throttled" and "throttled" in body["detail"]
    assert 0 < int(response["Retry-After"]) <= within


def test_a_user_over_the_rate_gets_a_429_json_with_retry_after(settings, django_user_model):
    settings.API_THROTTLE_USER = "3/min"
    busy_user = django_user_model.objects.create_user("busy")
    grant(busy_user, OPERATE)  # permissions are checked before throttles: let the POST reach them
    busy = token_client(busy_user)
    calm = token_client(django_user_model.objects.create_user("calm"))
    assert [busy.get("/api/bots").status_code for _ in range(3)] == [200, 200, 200]
    assert_throttled(busy.get("/api/bots"))
    assert_throttled(busy.post("/api/bots/1/start"))
    assert calm.get("/api/bots").status_code == 200  # per user


def test_the_window_reopens_when_retry_after_says(settings, django_user_model):
    settings.API_THROTTLE_USER = "1/min"
    client = token_client(django_user_model.objects.create_user("busy"))
    start = timezone.now().replace(second=10, microsecond=0)
    with time_machine.travel(start, tick=False):
        assert client.get("/api/bots").status_code == 200
        refused = client.get("/api/bots")
        assert_throttled(refused)
        assert refused["Retry-After"] == "50"
    with time_machine.travel(start + timezone.timedelta(seconds=50), tick=False):
        assert client.get("/api/bots").status_code == 200


def test_anonymous_callers_are_counted_per_address(settings):
    settings.API_THROTTLE_ANON = "2/min"
    client = APIClient()
    assert [client.get("/api/schema", REMOTE_ADDR=OUTSIDE).status_code for _ in range(2)] == [200, 200]
    assert_throttled(client.get("/api/schema", REMOTE_ADDR=OUTSIDE))
    assert client.get("/api/schema", REMOTE_ADDR="198.51.100.7").status_code == 200


def test_refused_tokens_count_against_the_address(settings):
    settings.API_THROTTLE_ANON = "3/min"
    client = APIClient()
    bad = {"HTTP_AUTHORIZATION": "Token 0123456789abcdef0123456789abcdef01234567", "REMOTE_ADDR": OUTSIDE}
    assert [client.get("/api/bots", **bad).status_code for _ in range(3)] == [401, 401, 401]
    assert_throttled(client.get("/api/bots", **bad))
    assert_throttled(client.get("/api/bots", HTTP_AUTHORIZATION="Token é", REMOTE_ADDR=OUTSIDE))


def test_throttle_keys_follow_the_trusted_proxy_rule(settings):
    settings.API_THROTTLE_ANON = "1/min"
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
    client = APIClient()
    # Through the trusted nginx, two clients are two addresses.
    for address in ("198.51.100.1", "198.51.100.2"):
        assert client.get("/api/schema", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=address).status_code == 200
    # An untrusted peer cannot buy a fresh count by forging X-Forwarded-For.
    assert client.get("/api/schema", REMOTE_ADDR=OUTSIDE, HTTP_X_FORWARDED_FOR="10.1.1.1").status_code == 200
    assert_throttled(client.get("/api/schema", REMOTE_ADDR=OUTSIDE, HTTP_X_FORWARDED_FOR="10.1.1.2"))


def test_a_rate_of_off_never_throttles(settings, django_user_model):
    settings.API_THROTTLE_USER = None
    client = token_client(django_user_model.objects.create_user("batch"))
    assert {client.get("/api/bots").status_code for _ in range(20)} == {200}


@pytest.mark.django_db(transaction=True)
def test_the_count_is_shared_by_every_web_process(gunicorn, django_user_model):
    url = gunicorn(workers=3, API_THROTTLE_USER="5/min")
    headers = {"Authorization": f"Token {api_key(django_user_model.objects.create_user('script'))}"}
    codes = []
    for _ in range(9):
        # A new connection each time, so the requests spread over the workers.
        codes.append(httpx.get(f"{url}/api/bots", headers=headers, timeout=10).status_code)
    assert codes == [200] * 5 + [429] * 4


def test_a_window_count_lives_in_the_cache_and_expires_with_its_window(settings, django_user_model, redis_client):
    from django.core.cache import cache

    settings.API_THROTTLE_USER = "5/min"
    user = django_user_model.objects.create_user("counted")
    client = token_client(user)
    start = timezone.now().replace(second=10, microsecond=0)
    with time_machine.travel(start, tick=False):
        assert [client.get("/api/bots").status_code for _ in range(2)] == [200, 200]
        window = int(start.timestamp() // 60)
    # One key for the window, counted once per request, readable through the cache as before,
    # and gone a little after the window ends (never a key left for ever in Redis).
    key = f"throttle_user_{user.pk}_{window}"
    assert cache.get(key) == 2
    stored = [name for name in redis_client.scan_iter("*throttle_user_*")]
    assert stored == [cache.make_key(key).encode()]
    assert 0 < redis_client.ttl(stored[0]) <= 61
