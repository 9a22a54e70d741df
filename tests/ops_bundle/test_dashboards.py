"""Grafana provisioning and dashboards: valid, wired to the provisioned uid, queries parse."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from . import dashboards as dash
from .tools import DEPLOY

GRAFANA = DEPLOY / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "deia-prometheus.yml"
PROVIDER = GRAFANA / "provisioning" / "dashboards" / "deia.yml"

# The guide's four dashboards and, for each, the panels it lists (words in titles).
GUIDE_PANELS = {
    "system-overview.json": [
        "Uptime",
        "Response time",
        "Error rate",
        "Request rate",
        "Request duration",
        "Bot instances",
        "Memory",
        "CPU",
        "Database connections",
        "Cache hit rate",
    ],
    "bot-performance.json": [
        "startup time",
        "Message processing latency",
        "status distribution",
        "activity",
        "Error rate by bot",
        "Resource usage per bot",
    ],
    "database-health.json": [
        "pool",
        "Query execution time",
        "Slow queries",
        "Transaction rate",
        "Replication lag",
        "Disk space",
        "Index statistics",
        "Backup status",
    ],
    "cache-performance.json": [
        "hit/miss",
        "eviction",
        "memory usage",
        "Key count",
        "Command latency",
        "Connected clients",
    ],
}


def provisioned_uid() -> str:
    (source,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    return source["uid"]


def test_the_datasource_is_provisioned_with_a_fixed_uid() -> None:
    (source,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] == "deia-prometheus"
    assert source["url"] == "http://127.0.0.1:9090"


def test_the_dashboard_provider_loads_files() -> None:
    (provider,) = yaml.safe_load(PROVIDER.read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")


def test_the_four_guide_dashboards_are_valid_json_with_unique_uids() -> None:
    files = sorted(p.name for p in dash.DASHBOARD_DIR.glob("*.json"))
    assert files == sorted(GUIDE_PANELS)
    uids = [json.loads((dash.DASHBOARD_DIR / f).read_text())["uid"] for f in files]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("name", sorted(GUIDE_PANELS))
def test_each_dashboard_has_the_panels_the_guide_lists(name: str) -> None:
    titles = [p.get("title", "") for p in dash.iter_panels(dash.load_dashboards()[name]["panels"])]
    missing = [want for want in GUIDE_PANELS[name] if not any(want.lower() in t.lower() for t in titles)]
    assert not missing, f"{name} lacks panels for {missing}; it has {titles}"


@pytest.mark.parametrize("name", sorted(GUIDE_PANELS))
def test_every_datasource_reference_is_the_provisioned_uid(name: str) -> None:
    board = dash.load_dashboards()[name]
    uid = provisioned_uid()
    refs = []
    for panel in dash.iter_panels(board["panels"]):
        if panel.get("type") == "row":
            continue
        refs.append(panel.get("datasource"))
        refs.extend(t.get("datasource") for t in panel.get("targets", []))
    refs.extend(v.get("datasource") for v in board.get("templating", {}).get("list", []) if v.get("type") == "query")
    wrong = [r for r in refs if not isinstance(r, dict) or r.get("uid") != uid or r.get("type") != "prometheus"]
    assert not wrong, f"{name}: datasource references other than {uid}: {wrong[:5]}"


@pytest.mark.parametrize("name", sorted(GUIDE_PANELS))
def test_no_import_placeholders(name: str) -> None:
    text = (dash.DASHBOARD_DIR / name).read_text()
    assert "${DS_" not in text and "__inputs" not in text and "__requires" not in text


def test_every_panel_with_a_datasource_has_a_query() -> None:
    for name, board in dash.load_dashboards().items():
        for panel in dash.iter_panels(board["panels"]):
            if panel.get("type") != "row":
                assert any(t.get("expr") for t in panel.get("targets", [])), f"{name}: {panel.get('title')}"


def test_the_extractor_finds_panel_and_variable_queries() -> None:
    board = {
        "templating": {
            "list": [{"name": "bot", "type": "query", "query": "label_values(deia_bot_messages_total, bot)"}]
        },
        "panels": [
            {"type": "row", "title": "r", "panels": [{"title": "nested", "targets": [{"refId": "A", "expr": "up"}]}]},
            {"title": "p", "targets": [{"refId": "A", "expr": 'rate(x{bot=~"$bot"}[$__rate_interval])'}]},
        ],
    }
    got = [(q.where, q.expr) for q in dash.dashboard_queries("t.json", board)]
    assert got == [
        ("nested [A]", "up"),
        ("p [A]", 'rate(x{bot=~".*"}[5m])'),
        ("variable bot", "deia_bot_messages_total"),
    ]


@pytest.mark.parametrize(
    ("query", "promql"),
    [
        ("label_values(deia_bots, status)", "deia_bots"),
        ("label_values(job)", '{job!=""}'),
        ({"query": "query_result(max by (bot) (deia_bot_messages_total))"}, "max by (bot) (deia_bot_messages_total)"),
        ("metrics(deia_.*)", '{__name__=~"deia_.*"}'),
        ("label_names()", None),
    ],
)
def test_template_queries_become_promql(query, promql) -> None:
    assert dash.template_query_to_promql(query) == promql


def test_app_metric_detection_ignores_recording_rules_and_exporters() -> None:
    assert dash.reads_app_metrics("sum(rate(django_http_requests_total_by_method_total[5m]))")
    assert dash.reads_app_metrics('max(deia_bots{status="error"})')
    assert not dash.reads_app_metrics("deia_web:http_errors:ratio_rate5m")
    assert not dash.reads_app_metrics("redis_up == 0 or pg_up == 0")


def test_every_dashboard_query_parses_in_a_real_prometheus(prometheus_url: str) -> None:
    queries = dash.all_queries()
    assert len(queries) >= 40
    dash.assert_queries_parse(prometheus_url, queries)


def test_a_broken_query_is_reported(prometheus_url: str) -> None:
    with pytest.raises(AssertionError, match="bad_data"):
        dash.assert_queries_parse(prometheus_url, ["sum(rate(deia_bot_messages_total[5m])"])


def test_no_dashboard_query_uses_a_bare_histogram_or_counter() -> None:
    # The guide's mistakes: a quantile of a histogram without rate() and _bucket, and a
    # counter graphed raw.
    for q in dash.all_queries():
        if q.where.startswith("variable "):
            continue  # label_values(metric, label) only lists label values
        if "histogram_quantile" in q.expr:
            assert re.search(r"rate\([a-z_]+_bucket", q.expr), q
        for counter in re.findall(r"\b\w+_total\b", q.expr):
            assert re.search(rf"(rate|increase)\({counter}\b", q.expr), q
