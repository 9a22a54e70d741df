"""Weekly and monthly operations reports: the weekly_report and monthly_report maintenance jobs.

A report covers one whole period in UTC (an ISO week, Monday to Sunday, or a calendar
month). `gather()` measures the period into a JSON-able dict (the Report's `figures`),
`render_markdown()` writes the Markdown people read (the page, the download, the mail),
`make_report()` stores it. By default a job reports the last complete period; a command
may name one (`manage.py weekly_report 2026-W47`, `manage.py monthly_report 2026-11`).

A period that already has a report gets it replaced in place (same id, same address):
a report made again after late data or a fix is the better one, and the run's audit row
(maintenance.<job>, `replaced: true`) keeps that it happened. A period that has not ended
yet is refused: its figures would be partial.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import connection
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from bots.models import Bot, ChatMessage, Role
from deia.audit_actions import Action
from deia.models import AuditLog
from deia.probes.services import probe_disk
from ops.console.capacity import human_bytes, source_name
from ops.console.figures import Figure, SourceError, source
from ops.maintenance.runs import JobFailed, Outcome
from ops.models import MaintenanceRun, Report

Kind = Report.Kind
# The guide's targets ("Key Metrics Dashboard").
AVAILABILITY_TARGET = 0.995
API_P95_TARGET = 0.2
ERROR_RATIO_TARGET = 0.005
MESSAGE_P95_TARGET = 0.5
TOP = 5  # bots in the "top erroring" and "slowest" lists
LIFECYCLE = {"crashes": Action.BOT_CRASH, "restarts": Action.BOT_RESTARTED, "start_errors": Action.BOT_START_ERROR}


# --- periods ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    kind: str
    start: date  # the first day
    end: date  # the first day after

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def label(self) -> str:
        if self.kind == Kind.WEEKLY:
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{self.start:%Y-%m}"

    def bounds(self) -> tuple[datetime, datetime]:
        return _midnight(self.start), _midnight(self.end)

    @classmethod
    def containing(cls, kind: str, day: date) -> Period:
        kind = check_kind(kind)
        if kind == Kind.WEEKLY:
            start = day - timedelta(days=day.weekday())
            return cls(kind, start, start + timedelta(days=7))
        start = day.replace(day=1)
        return cls(kind, start, (start + timedelta(days=32)).replace(day=1))

    @classmethod
    def last_complete(cls, kind: str, now: datetime | None = None) -> Period:
        today = (now or timezone.now()).astimezone(UTC).date()
        current = cls.containing(kind, today)
        return cls.containing(kind, current.start - timedelta(days=1))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def check_kind(kind: str) -> str:
    if kind not in Kind.values:
        raise ValueError(f"unknown report kind {kind!r}: one of {', '.join(Kind.values)}")
    return kind


def _ended(period: Period) -> Period:
    today = timezone.now().astimezone(UTC).date()
    if period.end > today:
        raise argparse.ArgumentTypeError(f"{period.label} is not over yet: it ends {period.last_day:%Y-%m-%d}")
    return period


def parse_week(text: str) -> Period:
    """An ISO week, 2026-W47, that has ended (argparse type of weekly_report's argument)."""
    try:
        year, _, week = text.upper().partition("-W")
        start = date.fromisocalendar(int(year), int(week), 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid week {text!r}: expected YYYY-Www, e.g. 2026-W47") from None
    return _ended(Period.containing(Kind.WEEKLY, start))


def parse_month(text: str) -> Period:
    """A calendar month, 2026-11, that has ended (argparse type of monthly_report's argument)."""
    try:
        start = datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid month {text!r}: expected YYYY-MM, e.g. 2026-11") from None
    return _ended(Period.containing(Kind.MONTHLY, start))


# --- measuring a period ----------------------------------------------------------------
def _p95(values: list[int]) -> float | None:
    """Nearest-rank 95th percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)])


def _latency_p95_by_bot(start: datetime, end: datetime) -> dict[int, float]:
    answers = ChatMessage.objects.filter(
        role=Role.ASSISTANT, created_at__gte=start, created_at__lt=end, latency_ms__isnull=False
    )
    if settings.DATABASE_IS_POSTGRES:
        # In the database: a month of answers is not carried into Python to find 5 % of it.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT bot_id, percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms) "  # noqa: S608 - our table
                f"FROM {ChatMessage._meta.db_table} WHERE role = %s AND latency_ms IS NOT NULL "
                "AND created_at >= %s AND created_at < %s GROUP BY bot_id",
                [Role.ASSISTANT, start, end],
            )
            return {bot: float(p95) for bot, p95 in cursor.fetchall()}
    per_bot: dict[int, list[int]] = {}
    for bot, ms in answers.values_list("bot_id", "latency_ms"):
        per_bot.setdefault(bot, []).append(ms)
    return {bot: _p95(values) for bot, values in per_bot.items()}


def _messages(period: Period) -> dict[str, Any]:
    start, end = period.bounds()
    window = ChatMessage.objects.filter(created_at__gte=start, created_at__lt=end)
    by_day = dict(
        window.filter(role=Role.USER)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values_list("day")
        .annotate(n=Count("id"))
        .order_by()
    )
    per_day = [
        {"day": f"{day:%Y-%m-%d}", "messages": by_day.get(day, 0)}
        for day in (period.start + timedelta(days=i) for i in range(period.days))
    ]
    p95 = _latency_p95_by_bot(start, end)
    answers = Q(messages__role=Role.ASSISTANT, messages__created_at__gte=start, messages__created_at__lt=end)
    rows = (
        Bot.objects.annotate(
            questions=Count(
                "messages",
                filter=Q(messages__role=Role.USER, messages__created_at__gte=start, messages__created_at__lt=end),
            ),
            answers=Count("messages", filter=answers),
            errors=Count("messages", filter=answers & ~Q(messages__error="")),
        )
        .filter(Q(questions__gt=0) | Q(answers__gt=0))
        .order_by("-questions", "slug")
    )
    per_bot = [
        {
            "bot": bot.slug,
            "messages": bot.questions,
            "per_day": round(bot.questions / period.days, 1),
            "answers": bot.answers,
            "errors": bot.errors,
            "error_ratio": round(bot.errors / bot.answers, 4) if bot.answers else None,
            "p95_ms": p95.get(bot.pk),
        }
        for bot in rows
    ]
    total = sum(d["messages"] for d in per_day)
    answered = sum(b["answers"] for b in per_bot)
    errors = sum(b["errors"] for b in per_bot)
    return {
        "total": total,
        "per_day_average": round(total / period.days, 1),
        "answers": answered,
        "errors": errors,
        "error_ratio": round(errors / answered, 4) if answered else None,
        "per_day": per_day,
        "per_bot": per_bot,
        "top_erroring": sorted(
            (b for b in per_bot if b["errors"]), key=lambda b: (-b["errors"], -(b["error_ratio"] or 0), b["bot"])
        )[:TOP],
        "slowest": sorted((b for b in per_bot if b["p95_ms"] is not None), key=lambda b: (-b["p95_ms"], b["bot"]))[
            :TOP
        ],
    }


def _lifecycle(period: Period) -> dict[str, Any]:
    start, end = period.bounds()
    names = {str(action): key for key, action in LIFECYCLE.items()}
    rows = (
        AuditLog.objects.filter(action__in=names, created_at__gte=start, created_at__lt=end)
        .values_list("action", "target")
        .annotate(n=Count("id"))
        .order_by()
    )
    totals = dict.fromkeys(LIFECYCLE, 0)
    by_bot: dict[str, dict[str, int]] = {}
    for action, target, n in rows:
        totals[names[action]] += n
        by_bot.setdefault(target, dict.fromkeys(LIFECYCLE, 0))[names[action]] += n
    table = [{"bot": bot, **counts} for bot, counts in by_bot.items()]
    table.sort(key=lambda row: (-sum(row[k] for k in LIFECYCLE), row["bot"]))
    return {**totals, "by_bot": table}


def _runs(period: Period, **filters) -> list[dict[str, Any]]:
    start, end = period.bounds()
    runs = MaintenanceRun.objects.filter(started_at__gte=start, started_at__lt=end, **filters).exclude(
        status=MaintenanceRun.Status.RUNNING
    )
    return [
        {
            "job": run.job,
            "started_at": run.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            "status": run.status,
            "summary": run.summary,
            "size": run.details.get("size") if isinstance(run.details, dict) else None,
        }
        for run in runs.order_by("started_at", "id")
    ]


def _first_last(job: str, key: str, period: Period) -> dict[str, Any]:
    """The value recorded by the last good run at or before the period's start, and by its last good run."""
    start, end = period.bounds()
    good = MaintenanceRun.objects.filter(job=job, status__in=MaintenanceRun.SUCCEEDED, details__has_key=key)
    before = good.filter(started_at__lt=start).order_by("-started_at").first()
    inside = good.filter(started_at__gte=start, started_at__lt=end).order_by("started_at")
    first = before or inside.first()
    last = inside.last()
    out = {
        "start": first.details[key] if first else None,
        "end": last.details[key] if last else None,
    }
    out["change"] = out["end"] - out["start"] if out["start"] is not None and out["end"] is not None else None
    return out


def _storage(period: Period) -> dict[str, Any]:
    disk = probe_disk(settings.BACKUP_DIR)
    return {
        "database_bytes": _first_last("db_report", "database_bytes", period),
        "backup_bytes": _first_last("backup", "size", period),
        "backup_disk_free_bytes": disk.facts.get("free_bytes") if disk.ok else None,
    }


SERVICE = (Figure.AVAILABILITY, Figure.API_P95, Figure.API_ERROR_RATIO, Figure.MESSAGE_P95, Figure.FIRST_TOKEN_P95)


def service_figures(period: Period) -> dict[str, Any]:
    """Availability, latencies and error rate of the period, from the System Overview's figures source."""
    src = source()
    start, end = period.bounds()
    out: dict[str, Any] = {"source": source_name(src), **dict.fromkeys(SERVICE)}
    try:
        for figure in SERVICE:
            out[figure] = src.scalar(figure, start, end)
    except SourceError as exc:
        # A report is made anyway: the rest of it is the application's own data.
        out["source"] += f", which did not answer ({exc})"
    return out


def gather(period: Period) -> dict[str, Any]:
    return {
        "kind": period.kind,
        "label": period.label,
        "period": {"start": f"{period.start:%Y-%m-%d}", "end": f"{period.last_day:%Y-%m-%d}", "days": period.days},
        "made_at": timezone.now().astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "service": service_figures(period),
        "messages": _messages(period),
        "lifecycle": _lifecycle(period),
        "backups": _runs(period, job="backup"),
        "restore_checks": _runs(period, job="verify_backup"),
        "storage": _storage(period),
        "maintenance_failures": _runs(period, status=MaintenanceRun.Status.FAILED),
    }


# --- Markdown --------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if value is None:
        return "no data"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _percent(ratio: float | None, digits: int = 2) -> str | None:
    return None if ratio is None else f"{100 * ratio:.{digits}f} %"


def _ms(seconds: float | None) -> str | None:
    return None if seconds is None else f"{seconds * 1000:.0f} ms"


def _verdict(value: float | None, target: float, higher_is_better: bool = False) -> str:
    if value is None:
        return "no data"
    met = value >= target if higher_is_better else value <= target
    return "met" if met else "MISSED"


def render_markdown(figures: dict[str, Any]) -> str:
    kind, period = figures["kind"], figures["period"]
    service, messages, lifecycle, storage = (
        figures["service"],
        figures["messages"],
        figures["lifecycle"],
        figures["storage"],
    )
    out = [
        f"# {kind.title()} operations report {figures['label']}",
        "",
        f"Period: {period['start']} to {period['end']} (UTC, {period['days']} days). Made {figures['made_at']}.",
        "",
        "## Service",
        "",
    ]
    availability, p95, errors = service["availability"], service["api_p95_seconds"], service["api_error_ratio"]
    message_p95 = service.get("message_p95_seconds")
    out += _table(
        ["Figure", "Value", "Target", "Verdict"],
        [
            ["Availability", _percent(availability, 3), "99.5 %", _verdict(availability, AVAILABILITY_TARGET, True)],
            ["API p95 latency", _ms(p95), "200 ms", _verdict(p95, API_P95_TARGET)],
            ["API error rate", _percent(errors), "0.5 %", _verdict(errors, ERROR_RATIO_TARGET)],
            ["Message p95 latency", _ms(message_p95), "500 ms", _verdict(message_p95, MESSAGE_P95_TARGET)],
            ["Time to first token p95", _ms(service.get("first_token_p95_seconds")), "-", "-"],
        ],
    )
    out += [f"Source: {service['source']}.", "", "## Messages", ""]
    out += [
        f"{messages['total']} messages ({messages['per_day_average']} a day), {messages['answers']} answers, "
        f"{messages['errors']} failed answers ({_cell(_percent(messages['error_ratio']))}).",
        "",
        "### Per day",
        "",
    ]
    out += _table(["Day", "Messages"], [[d["day"], d["messages"]] for d in messages["per_day"]])
    out += ["### Per bot", ""]
    out += _table(
        ["Bot", "Messages", "A day", "Answers", "Failed", "Error rate", "p95"],
        [
            [
                b["bot"],
                b["messages"],
                b["per_day"],
                b["answers"],
                b["errors"],
                _percent(b["error_ratio"]),
                None if b["p95_ms"] is None else f"{b['p95_ms']:.0f} ms",
            ]
            for b in messages["per_bot"]
        ]
        or [["none", 0, 0, 0, 0, None, None]],
    )
    out += ["### Top erroring bots", ""]
    out += (
        _table(
            ["Bot", "Failed answers", "Error rate"],
            [[b["bot"], b["errors"], _percent(b["error_ratio"])] for b in messages["top_erroring"]],
        )
        if messages["top_erroring"]
        else ["No failed answers.", ""]
    )
    out += ["### Slowest bots", ""]
    out += (
        _table(["Bot", "p95"], [[b["bot"], f"{b['p95_ms']:.0f} ms"] for b in messages["slowest"]])
        if messages["slowest"]
        else ["No answers with a latency.", ""]
    )
    out += [
        "## Bot crashes, restarts and start errors",
        "",
        f"{lifecycle['crashes']} crashes, {lifecycle['restarts']} automatic restarts, "
        f"{lifecycle['start_errors']} start errors.",
        "",
    ]
    if lifecycle["by_bot"]:
        out += _table(
            ["Bot", "Crashes", "Restarts", "Start errors"],
            [[r["bot"], r["crashes"], r["restarts"], r["start_errors"]] for r in lifecycle["by_bot"]],
        )
    for title, key, none in (
        ("Backups", "backups", "No backup ran in this period."),
        ("Restore checks", "restore_checks", "No restore check ran in this period."),
    ):
        out += [f"## {title}", ""]
        rows = figures[key]
        good = sum(1 for r in rows if r["status"] in MaintenanceRun.SUCCEEDED)
        out += [f"{good} of {len(rows)} succeeded." if rows else none, ""]
        if rows:
            out += _table(["Started (UTC)", "Status", "Size", "Summary"], _run_rows(rows))
    database, backup = storage["database_bytes"], storage["backup_bytes"]
    out += ["## Storage growth", ""]
    out += _table(
        ["What", "Start", "End", "Change"],
        [
            ["Database", *(human_bytes(database[k]) for k in ("start", "end", "change"))],
            ["Backup file", *(human_bytes(backup[k]) for k in ("start", "end", "change"))],
        ],
    )
    out += [f"Free on the backup disk now: {_cell(human_bytes(storage['backup_disk_free_bytes']))}.", ""]
    failures = figures["maintenance_failures"]
    out += ["## Maintenance failures", ""]
    if failures:
        out += _table(
            ["Job", "Started (UTC)", "Summary"], [[r["job"], r["started_at"], r["summary"]] for r in failures]
        )
    else:
        out += ["None.", ""]
    return "\n".join(out).rstrip() + "\n"


def _run_rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    return [[r["started_at"], r["status"], human_bytes(r["size"]) or "-", r["summary"]] for r in rows]


# --- making, storing and mailing ---------------------------------------------------------
def make_report(kind: str, period: Period | None = None) -> tuple[Report, bool]:
    """Measure and store the report of `period` (default: the last complete one): (report, replaced)."""
    kind = check_kind(kind)
    period = period or Period.last_complete(kind)
    if period.kind != kind:
        raise ValueError(f"a {kind} report needs a {kind} period, not {period.label}")
    figures = gather(period)
    report, created = Report.objects.update_or_create(
        kind=kind,
        period_start=period.start,
        defaults={
            "period_end": period.last_day,
            "created_at": timezone.now(),
            "body": render_markdown(figures),
            "figures": figures,
        },
    )
    return report, not created


def mail_report(report: Report) -> int:
    """Send the report to REPORT_EMAILS (none set: nothing sent); the number of recipients."""
    recipients = list(settings.REPORT_EMAILS)
    if not recipients:
        return 0
    message = EmailMessage(
        subject=f"[DEIA] {report.figures.get('kind', report.kind).title()} operations report "
        f"{report.figures.get('label', report.period_start)}",
        body=report.body,
        to=recipients,
    )
    message.attach(report.filename, report.body, "text/markdown")
    message.send(fail_silently=False)
    return len(recipients)


def _report_job(kind: str, period: Period | None) -> Outcome:
    report, replaced = make_report(kind, period)
    figures = report.figures
    details = {
        "report": report.pk,
        "kind": kind,
        "period": figures["label"],
        "replaced": replaced,
        "messages": figures["messages"]["total"],
        "crashes": figures["lifecycle"]["crashes"],
    }
    summary = (
        f"{kind} report {figures['label']} ({figures['period']['start']} to {figures['period']['end']}) "
        f"{'replaced' if replaced else 'made'}: {figures['messages']['total']} messages, "
        f"{figures['lifecycle']['crashes']} crashes, {len(figures['maintenance_failures'])} maintenance failures"
    )
    try:
        details["mailed_to"] = mail_report(report)
    except OSError as exc:  # SMTP's errors and a file backend's: the report stays, the run says the mail failed
        raise JobFailed(f"{summary}; mailing it failed: {type(exc).__name__}: {exc}", details) from None
    if details["mailed_to"]:
        summary += f"; mailed to {details['mailed_to']}"
    return Outcome(summary, details, changed=True)


def weekly_report(period: Period | None = None) -> Outcome:
    return _report_job(Kind.WEEKLY, period)


def monthly_report(period: Period | None = None) -> Outcome:
    return _report_job(Kind.MONTHLY, period)
