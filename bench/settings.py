"""Benchmark settings: the real ones, optionally without the metrics middleware.

BENCH_METRICS_MIDDLEWARE=off drops django-prometheus's before/after middleware (and
nothing else), so the API bench can measure what they cost on the same view.
"""

from __future__ import annotations

import os

from deia.settings import *  # noqa: F403
from deia.settings import MIDDLEWARE

METRICS_MIDDLEWARE = (
    "deia.inline_middleware.PrometheusBeforeMiddleware",
    "deia.inline_middleware.PrometheusAfterMiddleware",
)
if os.environ.get("BENCH_METRICS_MIDDLEWARE", "on") == "off":
    MIDDLEWARE = [name for name in MIDDLEWARE if name not in METRICS_MIDDLEWARE]
