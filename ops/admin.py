from __future__ import annotations

import json

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from bots import access
from deia.admin import ReadOnlyAdmin
from deia.audit import audit, client_ip
from deia.audit_actions import Action
from deia.flags import starts_frozen
from ops import admin_beat, tasks
from ops.console import pages
from ops.diagnose import cached_diagnose, overall
from ops.diagnose import summary as diagnose_summary
from ops.maintenance import JOBS
from ops.maintenance.runs import last_finished
from ops.models import MaintenanceRun
from ops.remediation import (
    RemediationError,
    cancel_query,
    clear_cache,
    freeze_starts,
    idle_connections,
    least_used_running,
    show_query,
    stop_least_used,
    terminate_idle_connections,
    unfreeze_starts,
)


@admin.register(MaintenanceRun)
class MaintenanceRunAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "job", "status", "duration_display", "summary", "actor")
    list_filter = ("job", "status", "started_at")
    search_fields = ("job", "summary", "actor")
    date_hierarchy = "started_at"
    ordering = ("-started_at", "-id")
    show_full_result_count = False
    fields = ("job", "status", "started_at", "finished_at", "duration_display", "actor", "host", "summary", "report")
    readonly_fields = fields

    def get_actions(self, request):
        return {}

    @admin.display(description="duration")
    def duration_display(self, run: MaintenanceRun) -> str:
        return "-" if run.duration is None else f"{run.duration:.1f} s"

    @admin.display(description="details")
    def report(self, run: MaintenanceRun) -> str:
        return render_details(run.details)

    def get_urls(self):
        return operations_urls(self.admin_site) + super().get_urls()


def render_details(details: dict) -> str:
    """A run's details: lists of records (table sizes, index usage, checks) as tables, the rest as JSON."""
    parts = []
    rest = {}
    for key, value in (details or {}).items():
        if isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
            columns = list(value[0])
            head = format_html_join("", "<th>{}</th>", ((c,) for c in columns))
            body = format_html_join(
                "",
                "<tr>{}</tr>",
                ((format_html_join("", "<td>{}</td>", ((row.get(c),) for c in columns)),) for row in value),
            )
            parts.append(
                format_html("<h3>{}</h3><table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", key, head, body)
            )
        else:
            rest[key] = value
    if rest:
        parts.insert(0, format_html("<pre>{}</pre>", json.dumps(rest, indent=2, sort_keys=True, default=str)))
    return mark_safe("".join(parts))  # noqa: S308 - every part went through format_html


# --- the Operations page -------------------------------------------------------------
# Remedies that need a confirmation step show what they would do first.
REMEDIES = ("terminate_idle_connections", "cancel_query", "clear_cache", "stop_least_used", "freeze", "unfreeze")
# Remedies that act on bots of every team also need what the API would ask for that.
REMEDY_NEEDS = {"stop_least_used": (access.MANAGE_ALL, access.OPERATE)}


def operations_urls(site) -> list:
    return [
        path("operations/", site.admin_view(operations_view), name="ops_operations"),
        path("operations/run/<str:job>/", site.admin_view(run_job_view), name="ops_operations_run"),
        path("operations/<str:remedy>/", site.admin_view(remedy_view), name="ops_operations_remedy"),
    ]


# The page needs VIEW; its buttons (jobs, remedies) need VIEW and OPERATE.
VIEW = "ops.view_operations"
OPERATE = "ops.operate"


def _context(request, **extra) -> dict:
    return {
        **admin.site.each_context(request),
        "title": "Operations",
        "can_operate": _can_operate(request),
        "can_stop_bots": _can_remedy(request, "stop_least_used"),
        **extra,
    }


def _can_view(request) -> bool:
    return request.user.has_perm(VIEW)


def _can_operate(request) -> bool:
    return _can_view(request) and request.user.has_perm(OPERATE)


def _can_remedy(request, remedy: str) -> bool:
    return _can_operate(request) and all(access.may(request.user, perm) for perm in REMEDY_NEEDS.get(remedy, ()))


@never_cache
def operations_view(request: HttpRequest) -> HttpResponse:
    if not _can_view(request):
        raise PermissionDenied
    diagnosis = cached_diagnose()
    checks = diagnosis.checks
    context = _context(
        request,
        checks=checks,
        checked_at=diagnosis.at,
        checked_seconds_ago=round(diagnosis.age_seconds),
        cache_seconds=settings.DIAGNOSE_CACHE_SECONDS,
        overall=overall(checks).name,
        summary=diagnose_summary(checks),
        # One row and one button per registered job, with its last run.
        jobs=[(job, last_finished(job.name)) for job in JOBS.values()],
        frozen=starts_frozen(),
        idle_minutes=settings.IDLE_CONNECTION_MINUTES,
    )
    return TemplateResponse(request, "admin/ops/operations.html", context)


def _back(request) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("admin:ops_operations"))


@require_POST
def run_job_view(request: HttpRequest, job: str) -> HttpResponse:
    if not _can_operate(request):
        raise PermissionDenied
    if job not in JOBS:
        messages.error(request, f"Unknown maintenance job {job!r}.")
        return _back(request)
    # The run's actor is "celery" (tasks take no actor); who asked is this audit row.
    with transaction.atomic():
        audit(Action.MAINTENANCE_ENQUEUE, request=request, target=job, details={"job": job})
        transaction.on_commit(lambda: tasks.TASKS[job].apply_async())
    messages.success(request, f"{job} queued on the {JOBS[job].queue} queue; its run appears under Maintenance runs.")
    return _back(request)


@require_POST
def remedy_view(request: HttpRequest, remedy: str) -> HttpResponse:
    if not _can_remedy(request, remedy):
        raise PermissionDenied
    if remedy not in REMEDIES:
        messages.error(request, f"Unknown remedy {remedy!r}.")
        return _back(request)
    who = {"user": request.user, "ip": client_ip(request)}
    confirmed = request.POST.get("confirm") == "yes"
    try:
        return REMEDY_HANDLERS[remedy](request, who, confirmed)
    except (RemediationError, ValueError) as exc:
        messages.error(request, str(exc))
        return _back(request)


def _confirm(request, remedy: str, question: str, rows: list[str], fields: dict) -> TemplateResponse:
    context = _context(request, remedy=remedy, question=question, rows=rows, fields=fields)
    return TemplateResponse(request, "admin/ops/operations_confirm.html", context)


def _number(request, name: str, kind=float):
    raw = request.POST.get(name, "").strip()
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name.replace('_', ' ')}: expected a number, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name.replace('_', ' ')} must be 0 or more")
    return value


def _terminate(request, who, confirmed):
    minutes = _number(request, "older_than_minutes")
    if not confirmed:
        sessions = idle_connections(minutes * 60)
        rows = [
            f"pid {s['pid']} {s['user']} {s['application'] or '-'} idle {s['idle_seconds']:.0f} s" for s in sessions
        ]
        question = f"Terminate {len(sessions)} sessions of this database idle for more than {minutes:g} minutes?"
        return _confirm(request, "terminate_idle_connections", question, rows, {"older_than_minutes": minutes})
    result = terminate_idle_connections(minutes, **who)
    messages.success(request, f"Terminated {len(result['terminated'])} of {result['found']} idle sessions.")
    return _back(request)


def _cancel(request, who, confirmed):
    pid = _number(request, "pid", int)
    if not confirmed:
        query = show_query(pid)
        rows = [f"pid {query['pid']} {query['user']} {query['state']} for {query['seconds']:g} s", query["query"]]
        return _confirm(request, "cancel_query", f"Cancel the query of pid {pid}?", rows, {"pid": pid})
    result = cancel_query(pid, **who)
    level = messages.SUCCESS if result["cancelled"] else messages.WARNING
    messages.add_message(request, level, f"Cancel of pid {pid} {'sent' if result['cancelled'] else 'not delivered'}.")
    return _back(request)


def _clear(request, who, confirmed):
    if not confirmed:
        question = "Clear the application cache? Pages are slower until it refills; Celery queues are kept."
        return _confirm(request, "clear_cache", question, [], {})
    removed = clear_cache(**who)
    messages.success(request, f"Cache cleared: {removed if removed >= 0 else 'all'} keys removed.")
    return _back(request)


def _stop(request, who, confirmed):
    keep = _number(request, "keep", int)
    if not confirmed:
        running = list(least_used_running())
        victims = running[: max(0, len(running) - keep)]
        rows = [f"{bot.slug}: {bot.recent_messages} messages in the last hour" for bot in victims]
        question = f"Stop {len(victims)} of {len(running)} running bots, keeping the {keep} most used?"
        return _confirm(request, "stop_least_used", question, rows, {"keep": keep})
    stopped = stop_least_used(keep, **who)
    messages.success(request, f"Stopping {len(stopped)} bots: {', '.join(b.slug for b in stopped) or 'none'}.")
    return _back(request)


def _freeze(request, who, confirmed):
    changed = freeze_starts(**who)
    messages.success(request, "Bot starts frozen." if changed else "Bot starts were already frozen.")
    return _back(request)


def _unfreeze(request, who, confirmed):
    changed = unfreeze_starts(**who)
    messages.success(request, "Bot starts unfrozen." if changed else "Bot starts were not frozen.")
    return _back(request)


REMEDY_HANDLERS = {
    "terminate_idle_connections": _terminate,
    "cancel_query": _cancel,
    "clear_cache": _clear,
    "stop_least_used": _stop,
    "freeze": _freeze,
    "unfreeze": _unfreeze,
}


# django-celery-beat's schedules: superusers only, schedulable tasks only (ops.admin_beat).
admin_beat.register()
# Reports (read-only) and the capacity page: ops.console.pages.
pages.register()
