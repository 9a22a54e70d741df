"""The audit log as CSV, streamed: rows come from a server-side cursor CHUNK_SIZE at a time,
so memory stays flat however many rows a date range holds. Behind PgBouncer (no server-side
cursors: DISABLE_SERVER_SIDE_CURSORS) the same holds with one query per chunk, each starting
after the last row of the one before in the list's order (`keyset_chunks`).

Under ASGI (gunicorn's uvicorn workers) Django reads a synchronous iterator whole before
sending it, so there the response gets an asynchronous one that fetches a chunk at a time
in the request's thread (`streamed_csv` picks the right one).
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta

from asgiref.sync import sync_to_async
from django import forms
from django.core.handlers.asgi import ASGIRequest
from django.db import connections
from django.db.models import Q

COLUMNS = ("id", "created_at", "severity", "actor", "user_id", "action", "target", "ip", "details")
# Rows fetched from the database at a time: the export's memory does not depend on the range.
CHUNK_SIZE = 2000


class ExportForm(forms.Form):
    """The date range, both days included (UTC), and the changelist's query string."""

    start = forms.DateField(label="From")
    end = forms.DateField(label="To")
    query = forms.CharField(required=False)

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            raise forms.ValidationError(f"the start date ({start}) is after the end date ({end})")
        return data

    def bounds(self) -> tuple[datetime, datetime]:
        """[start of the first day, start of the day after the last) in UTC."""
        start: date = self.cleaned_data["start"]
        end: date = self.cleaned_data["end"]
        return datetime.combine(start, time.min, UTC), datetime.combine(end + timedelta(days=1), time.min, UTC)

    def problem(self) -> str:
        """The form's errors in one line, for the admin's message."""
        return "; ".join(
            f"{self.fields[name].label}: {message}" if name in self.fields else message
            for name, messages in self.errors.items()
            for message in messages
        )


class _Echo:
    """csv.writer's file: writerow() returns the line instead of storing it."""

    def write(self, value: str) -> str:
        return value


def csv_lines(queryset) -> Iterator[str]:
    """The header, then one CSV line per audit row of `queryset`, fetched CHUNK_SIZE at a time."""
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    rows: Iterable[tuple] = _rows(queryset)
    for row_id, created_at, severity, actor, user_id, action, target, ip, details in rows:
        yield writer.writerow(
            (
                row_id,
                created_at.isoformat(),
                severity,
                actor,
                "" if user_id is None else user_id,
                action,
                target,
                ip or "",
                json.dumps(details, sort_keys=True),
            )
        )


def _rows(queryset) -> Iterable[tuple]:
    database = connections[queryset.db]
    ordering = _ordering(queryset)
    if database.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS") and ordering is not None:
        return keyset_chunks(queryset, ordering, database.features.nulls_order_largest)
    return queryset.values_list(*COLUMNS).iterator(chunk_size=CHUNK_SIZE)


def _ordering(queryset) -> list[tuple[str, bool]] | None:
    """The queryset's order as (column, descending) ending with the primary key, or None if it
    is not a list of COLUMNS (an expression, a related field)."""
    terms = queryset.query.order_by or (queryset.query.get_meta().ordering if queryset.query.default_ordering else [])
    ordering = []
    for term in terms:
        if not isinstance(term, str):
            return None
        name = term.lstrip("-")
        name = "id" if name == "pk" else name
        if name not in COLUMNS:
            return None
        ordering.append((name, term.startswith("-")))
    if "id" not in [name for name, _ in ordering]:
        ordering.append(("id", False))
    return ordering


def _after(name: str, value, descending: bool, nulls_largest: bool) -> Q:
    """Rows strictly after `value` in column `name`'s direction (NULL sorts as the database puts it)."""
    nulls_after = nulls_largest != descending
    if value is None:
        return Q(pk__in=[]) if nulls_after else Q(**{f"{name}__isnull": False})
    beyond = Q(**{f"{name}__{'lt' if descending else 'gt'}": value})
    return beyond | Q(**{f"{name}__isnull": True}) if nulls_after else beyond


def keyset_chunks(queryset, ordering: list[tuple[str, bool]], nulls_largest: bool) -> Iterator[tuple]:
    """The rows of `queryset` in `ordering`, CHUNK_SIZE per query, each chunk after the last row."""
    positions = [COLUMNS.index(name) for name, _ in ordering]
    after = Q()
    while True:
        chunk = list(queryset.filter(after).values_list(*COLUMNS)[:CHUNK_SIZE])
        yield from chunk
        if len(chunk) < CHUNK_SIZE:
            return
        last = [chunk[-1][i] for i in positions]
        # After the last row: equal in the first i columns and after it in column i, for some i.
        after, same = Q(pk__in=[]), Q()
        for (name, descending), value in zip(ordering, last, strict=True):
            after |= same & _after(name, value, descending, nulls_largest)
            same &= Q(**{f"{name}__isnull": True} if value is None else {name: value})


def _take(lines: Iterator[str], count: int) -> str:
    return "".join(itertools.islice(lines, count))


async def csv_lines_async(queryset) -> AsyncIterator[str]:
    """csv_lines, CHUNK_SIZE lines at a time, each read in the request's thread (its connection and cursor)."""
    lines = csv_lines(queryset)
    take = sync_to_async(_take, thread_sensitive=True)
    while part := await take(lines, CHUNK_SIZE):
        yield part


def streamed_csv(request, queryset) -> Iterator[str] | AsyncIterator[str]:
    """The CSV lines as the server streams them without reading them all first."""
    return csv_lines_async(queryset) if isinstance(request, ASGIRequest) else csv_lines(queryset)
