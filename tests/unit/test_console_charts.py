"""Server-side SVG charts with their text alternative, and the figures' formatting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

from ops.console.charts import format_value, line_chart
from ops.console.figures import histogram_quantile

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def svg_of(markup: str) -> ElementTree.Element:
    start, end = markup.index("<svg"), markup.index("</svg>") + len("</svg>")
    return ElementTree.fromstring(markup[start:end])  # noqa: S314 - our own markup


def test_a_line_chart_is_svg_with_title_desc_and_a_table_and_no_script():
    series = {"": [(T0 + timedelta(minutes=i), float(i)) for i in range(60)]}
    markup = str(line_chart(series, title="Requests per second", unit="req/s"))
    svg = svg_of(markup)
    assert svg.get("role") == "img"
    assert svg.find(f"{SVG}title").text == "Requests per second"
    desc = svg.find(f"{SVG}desc").text
    assert "last 59 req/s" in desc and "lowest 0 req/s" in desc and "highest 59 req/s" in desc
    assert svg.get("aria-labelledby").split() == [
        f"{svg.find(f'{SVG}title').get('id')}",
        svg.find(f"{SVG}desc").get("id"),
    ]
    assert len(svg.findall(f"{SVG}polyline")) == 1
    # The alternative: the same sentence on the page and a table of at most 24 rows.
    assert markup.count("<tr>") - 1 == 24
    assert "<script" not in markup and "http://" not in markup.replace("http://www.w3.org/2000/svg", "")


def test_a_labelled_chart_has_a_line_and_a_legend_entry_per_label_and_escapes_them():
    series = {
        "running": [(T0, 2.0), (T0 + timedelta(hours=1), 3.0)],
        "<b>x</b>": [(T0, 1.0), (T0 + timedelta(hours=1), 0.0)],
    }
    markup = str(line_chart(series, title="Bots by status", unit="bots"))
    svg = svg_of(markup)
    assert len(svg.findall(f"{SVG}polyline")) == 2
    assert {t.text for t in svg.findall(f"{SVG}text")} >= {"running", "<b>x</b>"}
    assert "<b>x</b>" not in markup


def test_a_chart_without_data_says_so_in_the_picture_and_in_words():
    markup = str(line_chart({}, title="Database size", unit="bytes"))
    assert "No data yet" in markup
    assert "Database size: no data for this period." in markup


def test_a_target_is_drawn_as_a_dashed_line_named_in_its_title():
    markup = str(line_chart({"": [(T0, 0.1), (T0 + timedelta(minutes=1), 0.3)]}, title="p95", unit="s", target=0.2))
    assert 'stroke-dasharray="4 3"' in markup and "target 200 ms" in markup


def test_figures_read_as_people_say_them():
    assert format_value(None, "s") == "no data"
    assert format_value(0.183, "s") == "183 ms"
    assert format_value(2.5, "s") == "2.50 s"
    assert format_value(0.99621, "ratio") == "99.62 %"
    assert format_value(1.5 * (1 << 30), "bytes") == "1.5 GB"
    assert format_value(2.5, "req/s") == "2.50 req/s"
    assert format_value(120, "req/s") == "120 req/s"


def test_histogram_quantile_matches_prometheus_on_known_buckets():
    assert histogram_quantile(0.95, {}) is None
    assert histogram_quantile(0.95, {"0.1": 0, "+Inf": 0}) is None
    assert histogram_quantile(0.5, {"1": 10}) == 0.5  # the first bucket starts at 0
    assert histogram_quantile(0.95, {"0.1": 90, "0.2": 10}) == 0.15000000000000002
    assert histogram_quantile(0.95, {"0.2": 10, "0.1": 90}) == histogram_quantile(0.95, {"0.1": 90, "0.2": 10})
    assert histogram_quantile(0.99, {"0.5": 50, "+Inf": 50}) == 0.5
    # With every bound known, an empty (unstored) bucket below is the lower bound.
    assert histogram_quantile(0.95, {"0.5": 100}, (0.1, 0.3, 0.5, 1.0)) == 0.3 + 0.2 * 0.95
    assert histogram_quantile(0.95, {"+Inf": 100}, (0.1, 0.3)) == 0.3
