"""The capacity page and the reports in the admin (the list, a report's page, its Markdown download).

Both show fleet-wide figures: every team's bots by name, their messages, crashes and the
installation's storage. So both need `ops.view_operations`, the permission of the other
fleet-wide page (Operations: diagnose, every job's runs), never a bot permission, which is
scoped to one's teams. Reports are read-only for everyone: only the jobs write them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from markdown_it import MarkdownIt

from deia.admin import ReadOnlyAdmin
from ops.console.capacity import Projection, assess
from ops.console.charts import line_chart
from ops.models import Report

VIEW = "ops.view_operations"
CHART_BOTS = 7  # lines in the messages chart (the palette's colours)

# CommonMark with tables; raw HTML in a report (a bot's name is an operator's text) is shown, not run.
MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


def markdown_html(text: str) -> str:
    return mark_safe(MARKDOWN.render(text))  # noqa: S308 - html=False escapes any HTML in the text


def _require_view(request: HttpRequest) -> None:
    if not request.user.has_perm(VIEW):
        raise PermissionDenied


@never_cache
def capacity_view(request: HttpRequest) -> HttpResponse:
    _require_view(request)
    capacity = assess()
    context = {
        **admin.site.each_context(request),
        "title": "Capacity",
        "capacity": capacity,
        "storage": [_storage_row(p) for p in capacity.storage],
        "charts": _charts(capacity),
    }
    return TemplateResponse(request, "admin/ops/capacity.html", context)


def _charts(capacity) -> dict:
    """The messages per bot and the database's size as SVG charts (each with its text alternative)."""
    charts = {}
    if capacity.messages:
        busiest = {p.name: p.points for p in capacity.messages[:CHART_BOTS]}
        title = f"Messages per day, the {len(busiest)} busiest bots, last {capacity.history_days} days"
        charts["messages"] = line_chart(busiest, title=title, unit="")
    if capacity.database and len(capacity.database.points) > 1:
        title = "Database size (db_report runs and now)"
        charts["database"] = line_chart({"database": capacity.database.points}, title=title, unit="bytes")
    return charts


def _storage_row(p: Projection) -> list:
    trend = "no trend yet (needs two measurements)" if p.slope_per_day is None else f"{p.shown(p.slope_per_day)} a day"
    return [p.name, len(p.points), p.shown(p.now), trend, p.shown(p.in_30_days), p.shown(p.in_90_days)]


class ReportAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "kind", "period_start", "period_end", "created_at", "messages", "crashes")
    list_display_links = ("__str__",)
    list_filter = ("kind",)
    ordering = ("-period_start", "kind")
    date_hierarchy = "period_start"

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(VIEW)

    def get_actions(self, request):
        return {}

    @admin.display(description="messages")
    def messages(self, report: Report):
        return report.figures.get("messages", {}).get("total")

    @admin.display(description="crashes")
    def crashes(self, report: Report):
        return report.figures.get("lifecycle", {}).get("crashes")

    def get_urls(self):
        download = self.admin_site.admin_view(self.download_view)
        return [path("<int:pk>/download/", download, name="ops_report_download"), *super().get_urls()]

    def _report(self, request, object_id) -> Report:
        _require_view(request)
        if not str(object_id).isdigit():
            raise Http404("no such report")
        return get_object_or_404(Report, pk=object_id)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """A report's page: its Markdown, rendered (there is nothing to change)."""
        report = self._report(request, object_id)
        context = {
            **self.admin_site.each_context(request),
            "title": str(report),
            "report": report,
            "body": markdown_html(report.body),
            "chart": _messages_chart(report),
            "opts": self.opts,
        }
        return TemplateResponse(request, "admin/ops/report.html", context)

    def download_view(self, request, pk: int) -> HttpResponse:
        report = self._report(request, pk)
        response = HttpResponse(report.body, content_type="text/markdown; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{report.filename}"'
        return response


def _messages_chart(report: Report):
    """Messages per day of the period, drawn from the stored figures (the Markdown has the table)."""
    days = report.figures.get("messages", {}).get("per_day", [])
    points = [(datetime.strptime(d["day"], "%Y-%m-%d").replace(tzinfo=UTC), float(d["messages"])) for d in days]
    return line_chart({"messages": points}, title="Messages per day", unit="") if points else None


def register() -> None:
    admin.site.register(Report, ReportAdmin)
