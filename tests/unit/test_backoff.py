"""Restart backoff: 1 s, doubling, capped at 5 min by default."""

from __future__ import annotations

from bots.lifecycle import backoff


def test_backoff_starts_at_the_base_and_doubles_each_failure(settings):
    settings.BOT_BACKOFF_BASE = 1.0
    settings.BOT_BACKOFF_CAP = 300.0
    assert [backoff(n) for n in range(1, 7)] == [1, 2, 4, 8, 16, 32]


def test_backoff_is_capped(settings):
    settings.BOT_BACKOFF_BASE = 1.0
    settings.BOT_BACKOFF_CAP = 300.0
    assert backoff(9) == 256
    assert backoff(10) == 300
    assert backoff(10_000) == 300


def test_no_failure_means_no_wait(settings):
    assert backoff(0) == 0
