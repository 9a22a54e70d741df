"""Every dashboard query on the app's own metrics returns data from a real Prometheus.

`scraped_prometheus` (provided by the shared fixtures in tests/conftest.py) is the URL
of a Prometheus that has scraped the real app (gunicorn) and a running bot under a
little generated traffic.
"""

from __future__ import annotations

from . import dashboards as dash


def test_every_app_query_of_every_dashboard_returns_data(scraped_prometheus: str) -> None:
    queries = dash.all_queries()
    dash.assert_queries_parse(scraped_prometheus, queries)
    dash.assert_app_queries_return_data(scraped_prometheus, queries)
