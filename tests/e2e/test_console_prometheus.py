"""The Overview's Prometheus source against a real Prometheus scraping the real app, with
the shipped recording rules loaded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ops.console.figures import LATENCY_VIEWS_LEFT_OUT, Figure, PrometheusSource, SourceError, source
from tests.plugins.observability import start_scraped_app, wait_for_series
from tests.support.procs import ROOT, free_port

pytestmark = pytest.mark.django_db(transaction=True)
RECORDING = ROOT / "deploy" / "prometheus" / "rules" / "recording.yml"


def test_the_figures_come_from_prometheus_and_its_recording_rules(gunicorn, prometheus, bot_worker, settings):
    app = start_scraped_app(gunicorn, prometheus, bot_worker, rule_files=(RECORDING,))
    settings.PROMETHEUS_URL = app.prometheus
    src = source()
    assert isinstance(src, PrometheusSource)
    # More API traffic, now that its latency series exist (a series born at 1 shows no increase),
    # then the rules evaluated over it (the shipped group interval is 30 s).
    for _ in range(5):
        app.api.get("/api/bots")
    api_count = f'django_http_requests_latency_seconds_by_view_method_count{{view!~"{LATENCY_VIEWS_LEFT_OUT}"}}'
    wait_for_series(app.prometheus, f"increase({api_count}[1m]) > 0")
    wait_for_series(app.prometheus, "deia_web:http_request_duration_seconds:p95_rate5m >= 0", timeout=90)
    # Availability is a subquery on steps aligned to its resolution: on a Prometheus seconds
    # old, no step may follow the first scrape yet.
    wait_for_series(app.prometheus, src.expression(Figure.AVAILABILITY, 300), timeout=30)
    end = datetime.now(UTC)
    five = (end - timedelta(minutes=5), end)

    assert src.expression(Figure.API_P95, 300) == "deia_web:http_request_duration_seconds:p95_rate5m"
    # The figure is the recorded series at the window's end, exactly.
    [at_end] = src.query(
        "query", {"query": "deia_web:http_request_duration_seconds:p95_rate5m", "time": end.timestamp()}
    )
    p95 = src.scalar(Figure.API_P95, *five)
    assert p95 == float(at_end["value"][1]) and 0 < p95 < 10
    assert src.scalar(Figure.REQUEST_RATE, *five) > 0
    # The traffic had a 404 but no 5xx.
    assert src.scalar(Figure.API_ERROR_RATIO, *five) == 0
    assert src.scalar(Figure.MESSAGE_RATE, *five) > 0
    assert 0 < src.scalar(Figure.MESSAGE_P95, *five) < 10
    assert 0 < src.scalar(Figure.FIRST_TOKEN_P95, *five) < 10
    assert 0 <= src.scalar(Figure.CACHE_HIT_RATIO, *five) <= 1
    assert src.scalar(Figure.AVAILABILITY, *five) == 1.0
    assert src.scalar(Figure.BOTS_BY_STATUS, *five) == 1
    # No postgres_exporter is scraped here: no database size, rather than a made-up 0.
    assert src.scalar(Figure.DATABASE_BYTES, *five) is None

    bots = src.series(Figure.BOTS_BY_STATUS, end - timedelta(minutes=2), end, timedelta(seconds=15))
    assert bots["running"][-1][1] == 1 and bots["stopped"][-1][1] == 0
    rate = src.series(Figure.REQUEST_RATE, end - timedelta(minutes=2), end, timedelta(seconds=15))
    assert set(rate) == {""} and any(v > 0 for _, v in rate[""])


def test_an_unreachable_prometheus_is_a_source_error_in_one_line():
    src = PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout=1)
    end = datetime.now(UTC)
    with pytest.raises(SourceError, match="did not answer"):
        src.scalar(Figure.REQUEST_RATE, end - timedelta(minutes=5), end)


def test_a_query_prometheus_refuses_is_a_source_error(gunicorn, prometheus):
    url = prometheus([])
    with pytest.raises(SourceError, match="refused"):
        PrometheusSource(url).query("query", {"query": "sum(("})
