"""Server-side SVG charts: no JavaScript, no CDN; the same markup works in a page and in a report.

line_chart(series, title=..., unit=...) returns safe HTML: an <svg role="img"> with <title>
and <desc>, followed by its text alternative (a sentence and a table of the points, in a
<details>). Axes and text use currentColor, so the chart follows the admin's light or
dark theme; series colours are chosen to read on both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from itertools import count

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

Points = Sequence[tuple[datetime, float]]
# Readable on white and on the admin's dark background (#121212).
PALETTE = ("#3b8eea", "#e5534b", "#d4a72c", "#3fb950", "#a371f7", "#8b949e", "#f0883e")
# Most rows in a chart's table; longer series are thinned evenly (the first and last point kept).
TABLE_ROWS = 24
_ids = count(1)


def format_value(value: float | None, unit: str) -> str:
    """A figure for people: '183 ms', '99.62 %', '1.4 GB', '2.5 req/s'."""
    if value is None:
        return "no data"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "ratio":
        return f"{value * 100:.2f} %"
    if unit == "bytes":
        for factor, name in ((1 << 40, "TB"), (1 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "kB")):
            if value >= factor:
                return f"{value / factor:.1f} {name}"
        return f"{value:.0f} B"
    if value and abs(value) < 10 and value != int(value):
        return f"{value:.2f} {unit}".strip()
    return f"{value:.0f} {unit}".strip()


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _thin(points: Points, most: int) -> list[tuple[datetime, float]]:
    points = list(points)
    if len(points) <= most:
        return points
    stride = (len(points) - 1) / (most - 1)
    return [points[round(i * stride)] for i in range(most)]


def _time_label(at: datetime, span_seconds: float) -> str:
    return at.strftime("%H:%M" if span_seconds <= 86400 else "%d %b")


def summary(series: dict[str, Points], *, title: str, unit: str) -> str:
    """One sentence per series: its last value, lowest and highest, over what time."""
    parts = []
    for label, points in sorted(series.items()):
        if not points:
            continue
        values = [v for _, v in points]
        name = f"{label}: " if label else ""
        parts.append(
            f"{name}last {format_value(values[-1], unit)}, lowest {format_value(min(values), unit)}, "
            f"highest {format_value(max(values), unit)}"
        )
    if not parts:
        return f"{title}: no data for this period."
    points = [p for ps in series.values() for p in ps]
    start, end = min(at for at, _ in points), max(at for at, _ in points)
    return f"{title}, {start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC: " + "; ".join(parts) + "."


def _table(series: dict[str, Points], unit: str) -> SafeString:
    labels = sorted(series)
    times = sorted({at for points in series.values() for at, _ in points})
    shown = {at for at, _ in _thin([(at, 0.0) for at in times], TABLE_ROWS)}
    by_label = {label: dict(points) for label, points in series.items()}
    head = format_html_join("", "<th scope='col'>{}</th>", ((label or "value",) for label in labels))
    rows = format_html_join(
        "",
        "<tr><th scope='row'>{}</th>{}</tr>",
        (
            (
                f"{at:%Y-%m-%d %H:%M}",
                format_html_join("", "<td>{}</td>", ((format_value(by_label[lb].get(at), unit),) for lb in labels)),
            )
            for at in times
            if at in shown
        ),
    )
    return format_html(
        "<table><thead><tr><th scope='col'>time (UTC)</th>{}</tr></thead><tbody>{}</tbody></table>", head, rows
    )


def line_chart(
    series: dict[str, Points],
    *,
    title: str,
    unit: str,
    width: int = 480,
    height: int = 180,
    target: float | None = None,
) -> SafeString:
    """An SVG line per series (labels in a legend), with an optional dashed target line."""
    chart_id = f"chart-{next(_ids)}"
    text = summary(series, title=title, unit=unit)
    points = [p for ps in series.values() for p in ps]
    left, right, top, bottom = 80, 8, 8, 36 if len(series) <= 1 else 52
    plot_w, plot_h = width - left - right, height - top - bottom
    parts: list[SafeString] = []
    if points:
        t0 = min(at for at, _ in points).timestamp()
        t1 = max(at for at, _ in points).timestamp()
        span = max(t1 - t0, 1.0)
        y_max = _nice_max(max([v for _, v in points] + ([target] if target is not None else [])))

        def x(at: datetime) -> str:
            return f"{left + (at.timestamp() - t0) / span * plot_w:.1f}"

        def y(value: float) -> str:
            return f"{top + plot_h - (max(value, 0.0) / y_max) * plot_h:.1f}"

        for fraction in (0, 0.5, 1):
            tick = y_max * fraction
            parts.append(
                format_html(
                    '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="currentColor" stroke-opacity="0.2"/>'
                    '<text x="{}" y="{}" text-anchor="end" font-size="11" fill="currentColor">{}</text>',
                    left,
                    left + plot_w,
                    y(tick),
                    y(tick),
                    left - 4,
                    f"{float(y(tick)) + 4:.1f}",
                    format_value(tick, unit),
                )
            )
        first, last = min(at for at, _ in points), max(at for at, _ in points)
        for at, anchor in ((first, "start"), (last, "end")):
            parts.append(
                format_html(
                    '<text x="{}" y="{}" text-anchor="{}" font-size="11" fill="currentColor">{}</text>',
                    x(at),
                    top + plot_h + 14,
                    anchor,
                    _time_label(at, span),
                )
            )
        if target is not None:
            parts.append(
                format_html(
                    '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#e5534b" stroke-dasharray="4 3">'
                    "<title>target {}</title></line>",
                    left,
                    left + plot_w,
                    y(target),
                    y(target),
                    format_value(target, unit),
                )
            )
        for index, (label, series_points) in enumerate(sorted(series.items())):
            colour = PALETTE[index % len(PALETTE)]
            coords = " ".join(f"{x(at)},{y(v)}" for at, v in series_points)
            shape = "polyline" if len(series_points) > 1 else "circle"
            if shape == "polyline":
                parts.append(
                    format_html('<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>', colour, coords)
                )
            else:
                at, v = series_points[0]
                parts.append(format_html('<circle cx="{}" cy="{}" r="3" fill="{}"/>', x(at), y(v), colour))
            if len(series) > 1:
                lx = left + (index % 4) * (plot_w // 4)
                ly = height - 6 - 14 * (index // 4)
                parts.append(
                    format_html(
                        '<rect x="{}" y="{}" width="10" height="10" fill="{}"/>'
                        '<text x="{}" y="{}" font-size="11" fill="currentColor">{}</text>',
                        lx,
                        ly - 9,
                        colour,
                        lx + 14,
                        ly,
                        label,
                    )
                )
    else:
        parts.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="middle" font-size="13" fill="currentColor">No data yet</text>',
                width / 2,
                height / 2,
            )
        )
    svg = format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="deia-chart" role="img" viewBox="0 0 {} {}" '
        'width="{}" height="{}" aria-labelledby="{}-title {}-desc">'
        '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>{}</svg>',
        width,
        height,
        width,
        height,
        chart_id,
        chart_id,
        chart_id,
        title,
        chart_id,
        text,
        mark_safe("".join(parts)),  # noqa: S308 - each part is format_html's
    )
    alternative = format_html(
        '<p class="deia-chart-summary">{}</p>'
        '<details class="deia-chart-table"><summary>{} as a table</summary>{}</details>',
        text,
        title,
        _table(series, unit) if points else "",
    )
    return format_html(
        '<figure class="deia-chart-figure"><figcaption>{}</figcaption>{}{}</figure>', title, svg, alternative
    )
