"""`make run`'s embedded SQLite: a report and the capacity assessment work there too (Python's
percentile instead of PostgreSQL's, the database file's size, no connection count)."""

from __future__ import annotations

import pytest

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


def test_the_capacity_assessment_on_sqlite_says_what_it_cannot_measure(known_week):
    triggers = {t.key: t for t in assess().triggers}
    assert triggers["db_connections"].state == State.NO_DATA
    assert "needs PostgreSQL" in triggers["db_connections"].value
