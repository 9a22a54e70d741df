"""DRF's SimpleRateThrottle as deia/throttling.py builds on it: the rate comes from
get_rate() at construction and parse_rate() sets num_requests and duration; timer,
cache and cache_format are the class's own. An upgrade that changes these fails here."""

from __future__ import annotations

from django.core.cache import cache

from deia.throttling import AnonRateThrottle, UserRateThrottle
from tests.adapters.pins import assert_installed_as_pinned


def test_drf_is_the_version_the_throttles_were_written_against():
    assert_installed_as_pinned("djangorestframework")


def test_a_throttle_takes_its_rate_from_get_rate_and_parses_it(settings):
    settings.API_THROTTLE_USER = "7/min"

    throttle = UserRateThrottle()

    assert (throttle.rate, throttle.num_requests, throttle.duration) == ("7/min", 7, 60)
    assert throttle.cache is cache
    assert throttle.timer() > 0
    assert throttle.cache_format % {"scope": "user", "ident": 1} == "throttle_user_1"


def test_an_off_rate_leaves_the_throttle_without_a_limit(settings):
    settings.API_THROTTLE_ANON = None

    throttle = AnonRateThrottle()

    assert (throttle.rate, throttle.num_requests, throttle.duration) == (None, None, None)
    assert throttle.hit("any-key")
