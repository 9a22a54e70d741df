"""The Operations page's copy of the diagnose results, shared through Django's cache."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from ops.diagnose.grading import Check
from ops.diagnose.run import run_diagnose

CACHE_KEY = "ops:diagnose"
RUNNING_KEY = "ops:diagnose:running"


@dataclass(frozen=True)
class Diagnosis:
    checks: list[Check]
    at: datetime  # when the checks ran

    @property
    def age_seconds(self) -> float:
        return max(0.0, (timezone.now() - self.at).total_seconds())


def _now() -> Diagnosis:
    return Diagnosis(run_diagnose(), timezone.now())


def cached_diagnose() -> Diagnosis:
    """run_diagnose()'s results at most DIAGNOSE_CACHE_SECONDS old, from Django's cache.

    Every check can take DIAGNOSE_TIMEOUT, one of them calls back into the web: page loads
    must not each run them. When the copy is stale one caller runs the checks (it won a
    cache.add); the others wait for its result, and run them themselves only if it never
    comes. With the cache down (Redis is one of the things diagnosed) every call runs them.
    """
    ttl = settings.DIAGNOSE_CACHE_SECONDS
    if ttl <= 0:
        return _now()
    give_up = time.monotonic() + 2 * settings.DIAGNOSE_TIMEOUT + 1
    while True:
        try:
            copy = cache.get(CACHE_KEY)
            if isinstance(copy, Diagnosis) and copy.age_seconds <= ttl:
                return copy
            won = cache.add(RUNNING_KEY, True, timeout=int(give_up - time.monotonic()) + 1)
        except Exception:  # noqa: BLE001 - any cache failure: answer from the checks themselves
            return _now()
        if won:
            copy = _now()
            try:
                cache.set(CACHE_KEY, copy, timeout=ttl)
                cache.delete(RUNNING_KEY)
            except Exception:  # noqa: BLE001,S110 - the results are good; the next load runs them again
                pass
            return copy
        if time.monotonic() > give_up:
            return _now()
        time.sleep(0.05)  # another request is running the checks: wait for its result
