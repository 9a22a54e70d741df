"""Capacity triggers at and around their thresholds, projections on known series, report periods."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime, timedelta

import pytest

from ops.console.capacity import (
    Projection,
    State,
    connections_trigger,
    cpu_trigger,
    days_until_full,
    growth,
    linear_fit,
    memory_trigger,
    messages_trigger,
    p95_trigger,
)
from ops.console.reports import Period, check_kind, parse_month, parse_week

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # a Tuesday


@pytest.mark.parametrize(
    ("make", "below", "at", "above"),
    [
        (lambda v: cpu_trigger(v, "test"), 0.69, 0.70, 0.7001),
        (memory_trigger, 0.79, 0.80, 0.8001),
        (lambda v: connections_trigger(round(v * 100), 100), 0.79, 0.80, 0.81),
    ],
    ids=["cpu", "memory", "db_connections"],
)
def test_a_trigger_holds_only_above_its_threshold(make, below, at, above):
    assert make(below).state == State.CLEAR
    assert make(at).state == State.CLEAR  # the guide: "above 70 %", "above 80 %"
    held = make(above)
    assert held.state == State.HOLDS and held.holds
    assert held.advice  # says what to do, as the guide does


def test_each_trigger_says_what_the_guide_would_do():
    advice = {
        "cpu": " ".join(cpu_trigger(0.9, "t").advice),
        "memory": " ".join(memory_trigger(0.9).advice),
        "db": " ".join(connections_trigger(95, 100).advice),
        "p95": " ".join(p95_trigger(0.3, 0.2, "t").advice),
        "messages": " ".join(messages_trigger(200, 100).advice),
    }
    assert "web workers" in advice["cpu"]
    assert "another worker host" in advice["memory"] and "stop_least_used" in advice["memory"]
    assert "PgBouncer" in advice["db"]
    assert "read replica" in advice["p95"]
    assert "CHAT_RETENTION_DAYS" in advice["messages"]


def test_missing_figures_are_no_data_in_words_never_a_zero():
    for trigger in (
        cpu_trigger(None, "none", "needs Prometheus"),
        memory_trigger(None),
        connections_trigger(None, None),
        p95_trigger(None, 0.2, "none"),
        messages_trigger(10, None),
    ):
        assert trigger.state == State.NO_DATA and trigger.value.startswith("no data: ")
        assert not trigger.holds


@pytest.mark.parametrize(
    ("this", "last", "state"),
    [(110, 100, State.CLEAR), (111, 100, State.HOLDS), (90, 100, State.CLEAR), (5, 0, State.NO_DATA)],
)
def test_week_over_week_growth_holds_above_ten_percent(this, last, state):
    assert messages_trigger(this, last).state == state
    assert p95_trigger(this / 1000, last / 1000, "test").state == state


def test_growth_of_a_week_over_the_week_before():
    assert growth(120, 100) == pytest.approx(0.2)
    assert growth(None, 100) is None and growth(100, 0) is None


def _days(values: list[float]) -> list[tuple[datetime, float]]:
    return [(NOW - timedelta(days=len(values) - 1 - i), v) for i, v in enumerate(values)]


def test_a_straight_line_is_projected_exactly():
    points = _days([10, 12, 14, 16, 18])  # +2 a day
    slope, last = linear_fit(points)
    assert slope == pytest.approx(2.0) and last == pytest.approx(18.0)
    p = Projection.of("support", "messages/day", points, NOW + timedelta(days=1))
    assert (p.now, p.in_30_days, p.in_90_days) == pytest.approx((20.0, 80.0, 200.0))
    assert p.total == 70


def test_a_shrinking_series_never_projects_below_zero():
    p = Projection.of("quiet", "messages/day", _days([30, 20, 10]), NOW)
    assert p.slope_per_day == pytest.approx(-10) and p.in_30_days == 0.0


def test_one_measurement_is_no_trend():
    p = Projection.of("database", "bytes", _days([5e6]), NOW)
    assert p.slope_per_day is None and p.now == 5e6 and p.in_30_days is None
    assert Projection.of("backup", "bytes", [], NOW).now is None


def test_days_until_the_disk_is_full_at_the_current_rate():
    assert days_until_full(1000.0, 100.0) == 10
    assert days_until_full(1000.0, 0.0) is None  # not growing: never, said as such
    assert days_until_full(1000.0, -5.0) is None
    assert days_until_full(1000.0, None) is None


def test_the_last_complete_period_is_the_week_or_month_before_the_current_one():
    week = Period.last_complete("weekly", NOW)
    assert (week.start, week.end, week.label, week.days) == (date(2026, 11, 23), date(2026, 11, 30), "2026-W48", 7)
    month = Period.last_complete("monthly", NOW)
    assert (month.start, month.last_day, month.label, month.days) == (
        date(2026, 11, 1),
        date(2026, 11, 30),
        "2026-11",
        30,
    )
    january = Period.last_complete("monthly", datetime(2027, 1, 3, tzinfo=UTC))
    assert (january.start, january.end) == (date(2026, 12, 1), date(2027, 1, 1))


def test_a_named_period_is_parsed_and_one_not_over_is_refused(time_machine):
    time_machine.move_to(NOW, tick=False)
    assert parse_week("2026-W47").start == date(2026, 11, 16)
    assert parse_month("2026-11").end == date(2026, 12, 1)
    for parse, text, message in [
        (parse_week, "2026-W49", "2026-W49 is not over yet: it ends 2026-12-06"),
        (parse_month, "2026-12", "2026-12 is not over yet: it ends 2026-12-31"),
        (parse_week, "2026-W60", "invalid week '2026-W60': expected YYYY-Www"),
        (parse_week, "last week", "invalid week 'last week'"),
        (parse_month, "2026-13", "invalid month '2026-13': expected YYYY-MM"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse(text)


def test_an_unknown_report_kind_is_refused():
    with pytest.raises(ValueError, match="unknown report kind 'yearly': one of weekly, monthly"):
        check_kind("yearly")
    with pytest.raises(ValueError, match="unknown report kind"):
        Period.last_complete("daily", NOW)
