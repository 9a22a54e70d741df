"""The audit log's CSV export: a date range of what the list shows (its filters, search and
date hierarchy), streamed, for holders of deia.export_auditlog, and itself audited."""

from __future__ import annotations

import asyncio
import csv
import io
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.messages import get_messages
from django.db import connection, connections
from django.http import StreamingHttpResponse
from django.test import AsyncClient
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from deia import audit_export
from deia.audit import audit
from deia.models import AuditLog

pytestmark = pytest.mark.django_db

EXPORT = reverse("admin:deia_auditlog_export")
LIST = reverse("admin:deia_auditlog_changelist")
VIEW, EXPORT_PERM = "deia.view_auditlog", "deia.export_auditlog"


def row_at(moment: datetime, action: str = "bot.start", actor: str = "reconcile", target: str = "support") -> AuditLog:
    row = audit(action, actor=actor, target=target, details={"n": 1})
    AuditLog.objects.filter(pk=row.pk).update(created_at=moment)
    return row


@pytest.fixture
def history() -> list[AuditLog]:
    """Rows on 2026-03-01 .. 2026-03-10 at noon UTC, every other one a warning."""
    rows = []
    for day in range(1, 11):
        moment = datetime(2026, 3, day, 12, tzinfo=UTC)
        if day % 2:
            rows.append(row_at(moment, "bot.start", actor="alice", target=f"bot-{day}"))
        else:
            rows.append(row_at(moment, "bot.crash", actor="reconcile", target=f"bot-{day}"))
    return rows


def export(browser, start: str = "2026-03-01", end: str = "2026-03-31", query: str = ""):
    return browser.post(EXPORT, {"start": start, "end": end, "query": query})


def read_csv(response) -> list[dict[str, str]]:
    assert isinstance(response, StreamingHttpResponse)
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def exports() -> list[AuditLog]:
    return list(AuditLog.objects.filter(action="audit.export"))


# --- permissions -----------------------------------------------------------------------
def test_anonymous_is_sent_to_sign_in_and_nothing_is_exported(admin_as, history):
    response = export(admin_as(None))
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert exports() == []


def test_a_viewer_without_the_export_permission_is_refused_and_sees_no_button(admin_as, make_user, history):
    browser = admin_as(make_user(VIEW))
    assert b"Export CSV" not in browser.get(LIST).content
    assert export(browser).status_code == 403
    assert exports() == []


def test_the_export_permission_alone_without_viewing_the_log_is_refused(admin_as, make_user, history):
    assert export(admin_as(make_user(EXPORT_PERM))).status_code == 403
    assert exports() == []


def test_a_holder_of_both_permissions_sees_the_button_and_gets_the_csv(admin_as, make_user, history):
    browser = admin_as(make_user(VIEW, EXPORT_PERM))
    page = browser.get(LIST, {"severity__exact": "warning"})
    assert b"Export CSV" in page.content
    assert b'name="query" value="severity__exact=warning"' in page.content
    response = export(browser)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="audit-log_2026-03-01_2026-03-31.csv"' in response["Content-Disposition"]
    assert len(read_csv(response)) == len(history)


def test_a_get_exports_nothing(admin_client, history):
    assert admin_client.get(EXPORT, {"start": "2026-03-01", "end": "2026-03-31"}).status_code == 405
    assert exports() == []


# --- content --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "",
        "severity__exact=warning",
        "q=alice",
        "actor=alice&action=bot.start",
        "created_at__year=2026&created_at__month=3&created_at__day=4",
        "o=-4",  # ordered by action
    ],
)
def test_the_csv_is_the_lists_rows_in_the_range_in_the_lists_order(admin_client, history, query):
    listed = admin_client.get(f"{LIST}?{query}&all=").context["cl"].result_list
    start, end = datetime(2026, 3, 3, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC)
    in_range = [row for row in listed if start <= row.created_at < end]
    assert in_range, "the case must export something"
    rows = read_csv(export(admin_client, "2026-03-03", "2026-03-08", query))
    assert [int(r["id"]) for r in rows] == [row.pk for row in in_range]
    first = next(row for row in in_range)
    assert rows[0] == {
        "id": str(first.pk),
        "created_at": first.created_at.isoformat(),
        "severity": first.severity,
        "actor": first.actor,
        "user_id": "",
        "action": first.action,
        "target": first.target,
        "ip": "",
        "details": '{"n": 1}',
    }


def test_the_export_is_audited_once_with_who_the_range_and_the_filters(admin_as, make_user, history):
    user = make_user(VIEW, EXPORT_PERM)
    rows = read_csv(export(admin_as(user), "2026-03-02", "2026-03-05", "severity__exact=warning"))
    (row,) = exports()
    assert (row.actor, row.user, row.target) == (user.username, user, "audit log 2026-03-02..2026-03-05")
    assert row.details == {"from": "2026-03-02", "to": "2026-03-05", "filters": "severity__exact=warning"}
    assert str(row.pk) not in {r["id"] for r in rows}


def test_an_export_of_today_leaves_out_its_own_audit_row(admin_client):
    today = datetime.now(UTC).date().isoformat()
    rows = read_csv(export(admin_client, today, today, "action=audit.export"))
    assert rows == []
    assert len(exports()) == 1


# --- bad input -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "end", "query", "said"),
    [
        ("2026-03-10", "2026-03-01", "", "the start date (2026-03-10) is after the end date (2026-03-01)"),
        ("yesterday", "2026-03-01", "", "From: Enter a valid date."),
        ("", "2026-03-01", "", "From: This field is required."),
        ("2026-03-01", "2026-03-10", "created_at__year=nope", "the list's filters are not valid"),
    ],
)
def test_bad_input_is_a_message_in_the_admin_and_nothing_else(admin_client, history, start, end, query, said):
    response = export(admin_client, start, end, query)
    assert response.status_code == 302
    assert response["Location"] == f"{LIST}?{query}"
    assert not isinstance(response, StreamingHttpResponse)
    said_to_user = [str(m) for m in get_messages(response.wsgi_request)]
    assert any(said in m and m.startswith("Nothing exported") for m in said_to_user), said_to_user
    assert exports() == []


# --- streaming ---------------------------------------------------------------------------
def _range_reads(captured: CaptureQueriesContext) -> list[str]:
    """Reads of audit rows without a LIMIT (the view builds the list's first page, a LIMIT read)."""
    sqls = [q["sql"] for q in captured.captured_queries]
    return [sql for sql in sqls if '"audit_logs"."details"' in sql and "LIMIT" not in sql]


def test_the_rows_are_read_only_while_the_response_is_consumed(admin_client, history):
    with CaptureQueriesContext(connection) as during_the_view:
        response = export(admin_client)
    assert isinstance(response, StreamingHttpResponse)
    assert _range_reads(during_the_view) == []
    with CaptureQueriesContext(connection) as while_read:
        assert len(read_csv(response)) == len(history)
    assert len(_range_reads(while_read)) == 1


def _fill(n: int) -> None:
    AuditLog.objects.all().delete()
    moment = datetime(2026, 3, 5, 12, tzinfo=UTC)
    AuditLog.objects.bulk_create(
        AuditLog(created_at=moment - timedelta(seconds=i), actor="celery", action="bot.start", target=f"bot-{i}" * 5)
        for i in range(n)
    )


def _peak_while_streaming(browser, n: int) -> int:
    _fill(n)
    response = export(browser)
    tracemalloc.start()
    try:
        count = sum(1 for _ in response.streaming_content)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == n + 1
    return peak


def test_memory_does_not_grow_with_the_number_of_rows(admin_client, monkeypatch):
    monkeypatch.setattr(audit_export, "CHUNK_SIZE", 100)
    small = _peak_while_streaming(admin_client, 1_000)
    large = _peak_while_streaming(admin_client, 10_000)
    # Ten times the rows: a list held in memory would need about ten times the peak.
    assert large < small * 2, (small, large)


async def _served_as_asgi(user, n: int) -> tuple[int, int, bytes]:
    """POST the export through Django's ASGI handler and read the body as an ASGI server does (async for)."""
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.post(EXPORT, {"start": "2026-03-01", "end": "2026-03-31", "query": ""})
    assert isinstance(response, StreamingHttpResponse) and response.is_async
    tracemalloc.start()
    try:
        lines, first = 0, b""
        async for part in response:
            lines += part.count(b"\n")
            first = first or part
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        # Django's test client leaves connections open after a request (an ASGI server's
        # request_finished closes them): give the executor thread's back to the pool.
        await sync_to_async(connections.close_all)()
    return lines, peak, first


@pytest.mark.django_db(transaction=True)
def test_under_asgi_the_csv_is_streamed_a_chunk_at_a_time_too(django_user_model, monkeypatch):
    # Django reads a synchronous iterator whole under ASGI: the export gives it an asynchronous one.
    monkeypatch.setattr(audit_export, "CHUNK_SIZE", 100)
    user = django_user_model.objects.create_superuser("exporter", password="x")
    _fill(1_000)
    lines, small, first = asyncio.run(_served_as_asgi(user, 1_000))
    assert lines == 1_001 and first.startswith(b"id,created_at,")
    _fill(10_000)
    lines, large, _ = asyncio.run(_served_as_asgi(user, 10_000))
    assert lines == 10_001
    assert large < small * 2, (small, large)
    # The second export's own row (the first went with the second _fill).
    assert AuditLog.objects.filter(action="audit.export", actor="exporter").count() == 1
