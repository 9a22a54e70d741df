"""Extract and check every PromQL query of the Grafana dashboards in deploy/grafana.

Used by test_dashboards.py (every query parses, against a real empty Prometheus) and
test_dashboards_live.py (every query that reads the app's or a bot's own metrics
returns data from a Prometheus that scraped the real app and a running bot).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

DASHBOARD_DIR = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"

# Grafana's built-in variables, replaced by values a plain Prometheus query accepts.
BUILTIN_VARIABLES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "__range_s": "3600",
    "__interval_ms": "60000",
}

# A metric name of the app (deia_*) or of django-prometheus (django_*); recording
# rule names (with a colon) are not the app's own metrics.
APP_METRIC = re.compile(r"(?<![\w:])(?:deia|django)_[A-Za-z0-9_]*(?![\w:])")


@dataclass(frozen=True)
class Query:
    dashboard: str
    where: str  # panel title and refId, or "variable <name>"
    raw: str  # as written in the dashboard
    expr: str  # runnable PromQL, variables substituted

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.where}: {self.expr}"


def load_dashboards(directory: Path = DASHBOARD_DIR) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def iter_panels(panels: Iterable[dict]) -> Iterator[dict]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def template_query_to_promql(query: str | dict) -> str | None:
    """Turn a Prometheus templating query into PromQL (None if it is not a query).

    label_values(metric, label) -> metric; label_values(label) -> {label!=""};
    query_result(expr) -> expr; metrics(regex) -> {__name__=~"regex"}.
    """
    if isinstance(query, dict):
        query = query.get("query", "")
    query = (query or "").strip()
    if not query:
        return None
    m = re.fullmatch(r"label_values\(\s*(.+?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)", query, re.S)
    if m:
        return m.group(1)
    m = re.fullmatch(r"label_values\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)", query)
    if m:
        return f'{{{m.group(1)}!=""}}'
    m = re.fullmatch(r"query_result\((.+)\)", query, re.S)
    if m:
        return m.group(1).strip()
    m = re.fullmatch(r"metrics\((.+)\)", query, re.S)
    if m:
        return f'{{__name__=~"{m.group(1).strip()}"}}'
    if query.startswith("label_names("):
        return None
    return query


def substitute_variables(expr: str, dashboard: dict) -> str:
    """Replace $var, ${var}, ${var:fmt} and [[var]] by a value Prometheus accepts."""
    values = dict(BUILTIN_VARIABLES)
    for var in dashboard.get("templating", {}).get("list", []):
        # A multi-value or "All" variable is used inside =~ matchers: match anything.
        values[var["name"]] = var.get("allValue") or ".*"
    for name in sorted(values, key=len, reverse=True):
        value = values[name]
        expr = re.sub(rf"\$\{{{re.escape(name)}(?::[^}}]*)?\}}", value, expr)
        expr = re.sub(rf"\[\[{re.escape(name)}\]\]", value, expr)
        expr = re.sub(rf"\${re.escape(name)}(?![A-Za-z0-9_])", value, expr)
    return expr


def dashboard_queries(name: str, dashboard: dict) -> list[Query]:
    queries: list[Query] = []
    for panel in iter_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            raw = target.get("expr")
            if raw:
                where = f"{panel.get('title', '?')} [{target.get('refId', '?')}]"
                queries.append(Query(name, where, raw, substitute_variables(raw, dashboard)))
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var.get("query") or var.get("definition", "")
        promql = template_query_to_promql(query)
        if promql:
            raw = query.get("query", "") if isinstance(query, dict) else query
            queries.append(Query(name, f"variable {var['name']}", raw, substitute_variables(promql, dashboard)))
    return queries


def all_queries(directory: Path = DASHBOARD_DIR) -> list[Query]:
    return [q for name, dash in load_dashboards(directory).items() for q in dashboard_queries(name, dash)]


def reads_app_metrics(expr: str) -> bool:
    return bool(APP_METRIC.search(expr))


def instant_query(prometheus_url: str, expr: str, timeout: float = 10) -> dict:
    """POST /api/v1/query; returns the decoded body, also for 4xx/5xx answers."""
    data = urllib.parse.urlencode({"query": expr}).encode()
    req = urllib.request.Request(f"{prometheus_url.rstrip('/')}/api/v1/query", data=data, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:  # bad_data comes back as HTTP 400 with a JSON body
        return json.load(exc)


def _text(q: Query | str) -> str:
    return q.expr if isinstance(q, Query) else q


def assert_queries_parse(prometheus_url: str, exprs: Iterable[Query | str]) -> None:
    failures = []
    for q in exprs:
        body = instant_query(prometheus_url, _text(q))
        if body.get("status") != "success":
            failures.append(f"{q}\n    -> {body.get('errorType')}: {body.get('error')}")
    assert not failures, "dashboard queries that Prometheus rejects:\n" + "\n".join(failures)


def assert_app_queries_return_data(
    prometheus_url: str, exprs: Iterable[Query | str], allow_empty: Iterable[str] = ()
) -> None:
    """Every expression that reads deia_* or django_* metrics returns a non-empty result.

    allow_empty: substrings of expressions that may legitimately be empty in the
    environment at hand (keep it short and say why where it is used).
    """
    allowed = tuple(allow_empty)
    failures = []
    checked = 0
    for q in exprs:
        expr = _text(q)
        if not reads_app_metrics(expr) or any(a in expr for a in allowed):
            continue
        checked += 1
        body = instant_query(prometheus_url, expr)
        if body.get("status") != "success":
            failures.append(f"{q}\n    -> {body.get('errorType')}: {body.get('error')}")
        elif not body["data"]["result"]:
            failures.append(f"{q}\n    -> empty result")
    assert checked, "no expression read deia_* or django_* metrics"
    assert not failures, "dashboard queries on the app's metrics without data:\n" + "\n".join(failures)
