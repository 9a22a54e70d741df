"""Benchmark settings: the real ones plus a bare view to compare the API against."""

from __future__ import annotations

from deia.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
