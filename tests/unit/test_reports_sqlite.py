"""`make run`'s embedded SQLite: a report and the capacity assessment work there too (Python's
percentile instead of PostgreSQL's, the database file's size, no connection count)."""

from __future__ import annotations

import pytest
from django.db import connection

from ops.console.capacity import State, assess
from ops.console.reports import gather, render_markdown
from tests.plugins.console import WEEK

pytestmark = pytest.mark.django_db


def test_a_report_on_sqlite_has_the_same_figures(known_week):
    figures = gather(WEEK)
    support, sales = figures["messages"]["per_bot"]
    assert (support["messages"], support["p95_ms"], sales["p95_ms"]) == (5, 400.0, 900.0)
    assert [d["messages"] for d in figures["messages"]["per_day"]] == [3, 0, 2, 0, 1, 0, 0]
    assert figures["lifecycle"]["crashes"] == 2 and figures["service"]["availability"] == 0.99
    assert "| support | 5 | 0.7 | 5 | 1 | 20.00 % | 400 ms |" in render_markdown(figures)


def test_the_capacity_assessment_says_what_it_cannot_measure_on_sqlite_and_measures_it_on_postgresql(known_week):
    # make test-unit runs this on SQLite, make test on PostgreSQL: each run checks its side.
    connections = {t.key: t for t in assess().triggers}["db_connections"]
    if connection.vendor == "sqlite":
        assert connections.state == State.NO_DATA
        assert "needs PostgreSQL" in connections.value
    else:
        assert connections.state in (State.CLEAR, State.HOLDS)
        assert "needs PostgreSQL" not in connections.value
