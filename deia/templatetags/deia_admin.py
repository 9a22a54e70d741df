"""Admin template tags for tables that grow to millions of rows."""

from __future__ import annotations

from datetime import date

from django import template
from django.db.models import Max, Min
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

register = template.Library()


def _local(moment):
    return timezone.localtime(moment) if timezone.is_aware(moment) else moment


@register.inclusion_tag("admin/date_hierarchy.html")
def date_hierarchy_from_bounds(cl) -> dict:
    """Django's date hierarchy without its SELECT DISTINCT over every row of the list.

    The periods offered are those between the list's first and last row (one MIN/MAX, an
    index lookup on the date field), empty ones included; the links and the drill-down
    are Django's own (`<field>__year`, `__month`, `__day`).
    """
    field = cl.date_hierarchy
    names = {part: f"{field}__{part}" for part in ("year", "month", "day")}
    year, month, day = (cl.params.get(name) for name in names.values())

    def link(filters: dict) -> str:
        return cl.get_query_string(filters, [f"{field}__"])

    if year and month and day:
        chosen = date(int(year), int(month), int(day))
        return {
            "show": True,
            "back": {
                "link": link({names["year"]: year, names["month"]: month}),
                "title": capfirst(formats.date_format(chosen, "YEAR_MONTH_FORMAT")),
            },
            "choices": [{"title": capfirst(formats.date_format(chosen, "MONTH_DAY_FORMAT"))}],
        }
    bounds = cl.queryset.aggregate(first=Min(field), last=Max(field))
    first, last = (None, None) if bounds["first"] is None else (_local(bounds["first"]), _local(bounds["last"]))
    if first is not None and not (year or month) and first.year == last.year:
        # As Django does: start at the year (and month) when all rows share it.
        year = first.year
        if first.month == last.month:
            month = first.month
    if year and month:
        days = [] if first is None else [date(int(year), int(month), d) for d in range(first.day, last.day + 1)]
        return {
            "show": True,
            "back": {"link": link({names["year"]: year}), "title": str(year)},
            "choices": [
                {
                    "link": link({names["year"]: year, names["month"]: month, names["day"]: d.day}),
                    "title": capfirst(formats.date_format(d, "MONTH_DAY_FORMAT")),
                }
                for d in days
            ],
        }
    if year:
        months = [] if first is None else [date(int(year), m, 1) for m in range(first.month, last.month + 1)]
        return {
            "show": True,
            "back": {"link": link({}), "title": _("All dates")},
            "choices": [
                {
                    "link": link({names["year"]: year, names["month"]: m.month}),
                    "title": capfirst(formats.date_format(m, "YEAR_MONTH_FORMAT")),
                }
                for m in months
            ],
        }
    years = [] if first is None else range(first.year, last.year + 1)
    return {
        "show": True,
        "back": None,
        "choices": [{"link": link({names["year"]: str(y)}), "title": str(y)} for y in years],
    }
