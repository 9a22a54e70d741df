"""API throttles: per user and per anonymous address, shared by every web process.

Both count in the Django cache (Redis in production, so all gunicorn workers and hosts
share one count; with the embedded local-memory cache each process counts for itself).
A fixed window with an atomic increment replaces DRF's default list of timestamps:
on Redis one round trip per request (INCR and EXPIRE in a MULTI: count_up, which the chat
path's per-user slot shares), elsewhere add, incr and touch, whatever the rate, and no
lost updates between processes. Rates come from
API_THROTTLE_USER / API_THROTTLE_ANON ("600/min", or "off"), read when a throttle is
made, so a test can override them.
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django_redis import get_redis_connection
from rest_framework import throttling

from deia.proxies import client_ip


def signed_in(request) -> bool:
    user = getattr(request, "user", None)
    return user is not None and user.is_authenticated


class WindowRateThrottle(throttling.SimpleRateThrottle):
    rate_setting = ""

    def get_rate(self) -> str | None:
        return getattr(settings, self.rate_setting)

    def get_ident(self, request) -> str:
        # The one rule of deia/proxies.py, not DRF's NUM_PROXIES.
        return client_ip(request) or "unknown"

    def allow_request(self, request, view) -> bool:
        key = self.get_cache_key(request, view)
        return key is None or self.hit(key)

    def hit(self, key: str) -> bool:
        """Count one request against key; False once the window's count is over the rate."""
        if self.rate is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        self.retry_after = (window + 1) * self.duration - now
        return count_up(f"{key}_{window}", self.duration + 1) <= self.num_requests

    def wait(self) -> float:
        return self.retry_after


class UserRateThrottle(WindowRateThrottle):
    """API_THROTTLE_USER per signed-in user (token or session); anonymous callers pass."""

    scope = "user"
    rate_setting = "API_THROTTLE_USER"

    def get_cache_key(self, request, view) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk} if signed_in(request) else None


class AnonRateThrottle(WindowRateThrottle):
    """API_THROTTLE_ANON per client address for callers that are not signed in."""

    scope = "anon"
    rate_setting = "API_THROTTLE_ANON"

    def get_cache_key(self, request, view) -> str | None:
        return None if signed_in(request) else self.address_key(request)

    def address_key(self, request) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def allow_failed_authentication(self, request) -> bool:
        """Count a refused credential against its address (called during authentication,
        when request.user cannot be asked yet)."""
        return self.hit(self.address_key(request))


def count_up(key: str, ttl: int) -> int:
    """Add one to the shared count under `key`, (re)set its expiry to `ttl` s, return it.

    On Redis one round trip: INCR and EXPIRE in a MULTI, never a count without its expiry
    (the two round trips of add-then-incr were the largest share of the API's own time per
    request). On the embedded local-memory cache: add, incr, touch.
    """
    try:
        redis = get_redis_connection()
    except NotImplementedError:  # the embedded local-memory cache
        cache.add(key, 0, timeout=ttl)
        try:
            count = cache.incr(key)
        except ValueError:  # the key expired between add and incr
            cache.add(key, 1, timeout=ttl)
            return 1
        cache.touch(key, ttl)
        return count
    name = cache.make_key(key)  # the cache's own key, so cache.get() and cache.decr() see it
    pipe = redis.pipeline(transaction=True)
    pipe.incr(name)
    pipe.expire(name, ttl)
    count, _ = pipe.execute()
    return count
