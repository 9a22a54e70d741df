"""The stored source's arithmetic on known samples (PostgreSQL): rates, ratios, p95 from
buckets, gauges, series, the roll-up and retention, and "no data" as None."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deia import traffic
from ops.console import samples
from ops.console.figures import Figure, StoredSource
from ops.console.models import Sample

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def put(at: datetime, name: str, value: float, label: str = "", span: int = 60) -> None:
    samples.upsert([(at, span, name, label, value)], add=True)


def test_the_request_rate_and_error_ratio_come_from_the_flushed_counts():
    for i in range(5):
        put(T0 + i * MIN, samples.REQUESTS, 120)
    put(T0 + 2 * MIN, samples.ERRORS, 3)
    src = StoredSource()
    assert src.scalar(Figure.REQUEST_RATE, T0, T0 + 5 * MIN) == pytest.approx(600 / 300)
    assert src.scalar(Figure.API_ERROR_RATIO, T0, T0 + 5 * MIN) == pytest.approx(3 / 600)
    # The window starts at the whole minute: 12:00:40 reads from 12:00.
    assert src.scalar(Figure.REQUEST_RATE, T0 + timedelta(seconds=40), T0 + 5 * MIN) == pytest.approx(2.0)


def test_the_p95_is_interpolated_inside_its_bucket_as_histogram_quantile_does():
    put(T0, samples.LATENCY, 90, "0.1")
    put(T0 + MIN, samples.LATENCY, 10, "0.2")
    # rank 95 of 100 falls half-way into the (0.1, 0.2] bucket.
    assert StoredSource().scalar(Figure.API_P95, T0, T0 + 5 * MIN) == pytest.approx(0.15)


def test_a_p95_in_the_unbounded_bucket_is_the_highest_bound():
    put(T0, samples.LATENCY, 1, "0.1")
    put(T0, samples.LATENCY, 99, "+Inf")
    assert StoredSource().scalar(Figure.API_P95, T0, T0 + MIN) == max(traffic.LATENCY_BUCKETS)


def test_an_empty_bucket_below_still_bounds_the_interpolation():
    put(T0, samples.LATENCY, 100, "0.5")  # nothing stored for (0.3, ...]: its place is known
    assert StoredSource().scalar(Figure.API_P95, T0, T0 + MIN) == pytest.approx(0.3 + 0.2 * 0.95)


def test_availability_is_the_share_of_sampled_minutes_that_were_healthy():
    for i in range(10):
        put(T0 + i * MIN, samples.HEALTH_MINUTES, 1)
        put(T0 + i * MIN, samples.HEALTH_OK, 0 if i == 3 else 1)
    assert StoredSource().scalar(Figure.AVAILABILITY, T0, T0 + 10 * MIN) == pytest.approx(0.9)


def test_an_empty_window_has_no_figures_at_all_never_a_zero():
    put(T0, samples.REQUESTS, 10)  # outside the window asked for
    src = StoredSource()
    later = T0 + timedelta(hours=1)
    for figure in Figure:
        assert src.scalar(figure, later, later + 5 * MIN) is None, figure
        assert src.series(figure, later, later + 5 * MIN, MIN) == {}, figure


def test_watched_minutes_without_requests_are_a_real_zero_rate_but_no_ratio_or_p95():
    put(T0, samples.HEALTH_MINUTES, 1)
    put(T0, samples.HEALTH_OK, 1)
    src = StoredSource()
    assert src.scalar(Figure.REQUEST_RATE, T0, T0 + MIN) == 0.0
    assert src.scalar(Figure.API_ERROR_RATIO, T0, T0 + MIN) is None
    assert src.scalar(Figure.API_P95, T0, T0 + MIN) is None
    assert src.scalar(Figure.CACHE_HIT_RATIO, T0, T0 + MIN) is None


def test_the_message_rate_is_over_the_sampled_minutes_and_the_cache_ratio_over_reads():
    put(T0, samples.MESSAGES, 60)
    put(T0 + MIN, samples.MESSAGES, 120)
    put(T0, samples.CACHE_HITS, 30)
    put(T0, samples.CACHE_MISSES, 10)
    src = StoredSource()
    # Two sampled minutes in a ten-minute window: 180 answers over 120 s.
    assert src.scalar(Figure.MESSAGE_RATE, T0, T0 + 10 * MIN) == pytest.approx(1.5)
    assert src.scalar(Figure.CACHE_HIT_RATIO, T0, T0 + 10 * MIN) == pytest.approx(0.75)


def test_gauges_read_their_latest_sample_and_bots_come_by_status():
    samples.upsert(
        [
            (T0, 60, samples.BOTS, "running", 2),
            (T0, 60, samples.BOTS, "stopped", 5),
            (T0 + MIN, 60, samples.BOTS, "running", 3),
            (T0 + MIN, 60, samples.BOTS, "stopped", 4),
            (T0, 60, samples.DATABASE_BYTES, "", 1000),
            (T0 + MIN, 60, samples.DATABASE_BYTES, "", 1500),
        ],
        add=False,
    )
    src = StoredSource()
    assert src.scalar(Figure.BOTS_BY_STATUS, T0, T0 + 5 * MIN) == 7
    assert src.scalar(Figure.DATABASE_BYTES, T0, T0 + 5 * MIN) == 1500
    series = src.series(Figure.BOTS_BY_STATUS, T0, T0 + 5 * MIN, MIN)
    assert series == {"running": [(T0, 2), (T0 + MIN, 3)], "stopped": [(T0, 5), (T0 + MIN, 4)]}


def test_a_series_has_a_point_per_step_with_data_only():
    put(T0, samples.REQUESTS, 60)
    put(T0 + MIN, samples.REQUESTS, 120)
    put(T0 + 4 * MIN, samples.REQUESTS, 30)
    series = StoredSource().series(Figure.REQUEST_RATE, T0, T0 + 6 * MIN, 2 * MIN)
    assert series == {"": [(T0, pytest.approx(180 / 120)), (T0 + 4 * MIN, pytest.approx(30 / 120))]}


def test_two_flushes_of_the_same_minute_add_up_in_one_row():
    put(T0, samples.REQUESTS, 5)
    put(T0, samples.REQUESTS, 7)
    assert list(Sample.objects.values_list("name", "value")) == [(samples.REQUESTS, 12)]


def test_old_minutes_roll_up_into_hours_with_the_same_figures_and_old_hours_go():
    old = T0 - timedelta(days=3)
    for i in range(60):
        put(old + i * MIN, samples.REQUESTS, 60)
        put(old + i * MIN, samples.LATENCY, 9, "0.1")
        put(old + i * MIN, samples.LATENCY, 1, "0.5")
        samples.upsert([(old + i * MIN, 60, samples.DATABASE_BYTES, "", 1000 + i)], add=False)
    src = StoredSource()
    window = (old, old + timedelta(hours=1))
    before = {f: src.scalar(f, *window) for f in (Figure.REQUEST_RATE, Figure.API_P95)}
    assert samples.roll_up(T0) == 1
    assert set(Sample.objects.values_list("span", flat=True)) == {3600}
    assert {f: src.scalar(f, *window) for f in (Figure.REQUEST_RATE, Figure.API_P95)} == before
    # A gauge's hour is the mean of its minutes.
    assert src.scalar(Figure.DATABASE_BYTES, *window) == pytest.approx(1000 + 59 / 2)
    # Recent minutes stay minutes; rows past the retention are deleted.
    put(T0, samples.REQUESTS, 1)
    assert samples.roll_up(T0) == 0
    assert samples.purge(old + timedelta(days=samples.RETENTION_DAYS, hours=2)) == 4
    assert list(Sample.objects.values_list("span", "name")) == [(60, samples.REQUESTS)]
