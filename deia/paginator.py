"""A paginator for admin lists of tables that grow to millions of rows.

Django's changelist counts its rows on every page view; on PostgreSQL a COUNT(*) of the
whole chat_messages table reads all of it. When the list is unfiltered and the planner's
estimate (pg_class.reltuples, kept by ANALYZE and autovacuum) is above
ADMIN_COUNT_ESTIMATE_ABOVE, the count is that estimate, and the list says "about N".
A filtered list, a small table and SQLite get the exact count.
"""

from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

from deia.adapters.django import is_unfiltered


def estimated_rows(table: str, using: str = "default") -> int | None:
    """The planner's row estimate of a table; None off PostgreSQL or before any ANALYZE."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
        row = cursor.fetchone()
    # -1 (PostgreSQL 14+) means the table was never analysed: no estimate to trust.
    return row[0] if row and row[0] >= 0 else None


class EstimatedCountPaginator(Paginator):
    """Paginator whose count is PostgreSQL's estimate for a large unfiltered table (`estimated` says so)."""

    estimated = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if hasattr(queryset, "query") and is_unfiltered(queryset):
            estimate = estimated_rows(queryset.model._meta.db_table, queryset.db)
            if estimate is not None and estimate > settings.ADMIN_COUNT_ESTIMATE_ABOVE:
                self.estimated = True
                return estimate
        return super().count
