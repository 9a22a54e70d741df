"""chat_messages becomes a table partitioned by month on PostgreSQL (bots.partitions).

The rows are copied into a new partitioned table under the same name, with the same columns,
checks, indexes (declared on the parent, so every partition has them) and foreign key; the
primary key becomes (id, created_at), as PostgreSQL requires the partition key in it. Ids keep
coming from one sequence, set past the old one (and past the largest id). There is a partition
for every month holding rows, this month and the next CHAT_PARTITIONS_AHEAD, and the default
partition.

Reversible: backwards copies the rows into a plain table again (primary key id, an identity
column continuing after the largest id). Both ways hold an exclusive lock on chat_messages
while they copy: chats cannot be stored meanwhile (about a minute per few million rows; see
docs/MAINTENANCE.md). Django's model state does not change: a no-op on SQLite.
"""

from datetime import UTC, datetime

from django.conf import settings
from django.db import migrations

from bots.partitions import DEFAULT, TABLE, add_months, bounds, month_of, months_between, name_indexes, partition_name

OLD = f"{TABLE}_old"


def _rows(cursor, query: str, args=()) -> list[tuple]:
    cursor.execute(query, args)
    return cursor.fetchall()


def _next_id(cursor) -> int:
    """The largest id handed out so far: the sequence's position or the largest row id."""
    (sequence,) = _rows(cursor, "SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])[0]
    last, called = _rows(cursor, f"SELECT last_value, is_called FROM {sequence}")[0]  # noqa: S608
    (largest,) = _rows(cursor, f"SELECT coalesce(max(id), 0) FROM {TABLE}")[0]  # noqa: S608
    return max(last if called else 0, largest)


def rebuild(schema_editor, partitioned: bool) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        position = _next_id(cursor)
        # Read while they still name chat_messages: they are recreated on the new table as they are.
        indexes = _rows(
            cursor,
            "SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary",
            [TABLE],
        )
        foreign_keys = _rows(
            cursor,
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
            "AND contype = 'f'",
            [TABLE],
        )
        # The old table out of the way, its index and constraint names freed.
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD}")
        cursor.execute(f"ALTER TABLE {OLD} RENAME CONSTRAINT {TABLE}_pkey TO {OLD}_pkey")
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        for name, _ in foreign_keys:
            cursor.execute(f'ALTER TABLE {OLD} DROP CONSTRAINT "{name}"')

        partition_by = " PARTITION BY RANGE (created_at)" if partitioned else ""
        cursor.execute(f"CREATE TABLE {TABLE} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING CONSTRAINTS){partition_by}")
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id DROP DEFAULT")  # the old sequence goes with OLD
        key = "id, created_at" if partitioned else "id"
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY ({key})")
        if partitioned:
            ahead = settings.CHAT_PARTITIONS_AHEAD
            # Every month from the oldest row's to the last one ahead: no gap for a late row to fall into.
            (oldest,) = _rows(cursor, f"SELECT min(created_at) FROM {OLD}")[0]  # noqa: S608
            this = month_of(datetime.now(UTC))
            months = months_between(min(this, month_of(oldest)) if oldest else this, add_months(this, ahead))
            for month in months:
                cursor.execute(
                    f"CREATE TABLE {partition_name(month)} PARTITION OF {TABLE} FOR VALUES FROM (%s) TO (%s)",
                    bounds(month),
                )
            cursor.execute(f"CREATE TABLE {DEFAULT} PARTITION OF {TABLE} DEFAULT")

        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {OLD}")  # noqa: S608 - the same columns, in order
        for _, definition in indexes:  # built once over the copied rows, faster than row by row
            cursor.execute(definition.replace(" ON ONLY ", " ON ", 1))
        if partitioned:
            name_indexes(schema_editor.connection.alias)
        for name, definition in foreign_keys:
            cursor.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT "{name}" {definition}')
        cursor.execute(f"DROP TABLE {OLD}")

        if partitioned:  # PostgreSQL 15 has no identity column on a partitioned table: a sequence it owns
            cursor.execute(f"CREATE SEQUENCE {TABLE}_id_seq AS bigint OWNED BY {TABLE}.id")
            cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{TABLE}_id_seq')")
        else:  # as Django creates it
            cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY")
        if position:
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), %s)", [position])
        cursor.execute(f"ANALYZE {TABLE}")


def forwards(apps, schema_editor) -> None:
    rebuild(schema_editor, partitioned=True)


def backwards(apps, schema_editor) -> None:
    rebuild(schema_editor, partitioned=False)


class Migration(migrations.Migration):
    dependencies = [
        ("bots", "0004_chat_created_idx"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
