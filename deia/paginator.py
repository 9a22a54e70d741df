"""A paginator for admin lists of tables that grow to millions of rows.

Django's changelist counts its rows on every page view; on PostgreSQL a COUNT(*) of the
whole chat_messages table reads all of it. When the list is unfiltered and the planner's
estimate (pg_class.reltuples, kept by ANALYZE and autovacuum; summed over a partitioned
table's partitions) is above
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
    # A partitioned table's own reltuples is set only by an ANALYZE of it, which autovacuum never
    # runs: the sum of its partitions'.
    # -1 (PostgreSQL 14+) means never analysed: no estimate to trust when no leaf has one.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sum(greatest(reltuples, 0))::bigint, bool_or(reltuples >= 0) FROM pg_class "
            "WHERE relkind <> 'p' AND (oid = %s::regclass OR oid IN "
            "(SELECT relid FROM pg_partition_tree(%s::regclass) WHERE isleaf))",
            [table, table],
        )
        rows, analysed = cursor.fetchone()
    return rows if analysed else None


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
