"""The migration that partitions chat_messages, both ways, over a table holding rows of several
months: every row and id kept, ids continuing after them, new inserts landing in their month."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from bots import partitions
from bots.models import Bot, ChatMessage, Role

pytestmark = pytest.mark.django_db(transaction=True)

MONTHS = [datetime(2026, m, 15, 8, tzinfo=UTC) for m in (3, 5, 6)] + [datetime(2026, 6, 30, 23, 59, tzinfo=UTC)]


def migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection)  # a fresh graph: the one above is consumed


def ours(executor: MigrationExecutor) -> tuple[str, str]:
    return next(key for key in executor.loader.graph.nodes if key[0] == "bots" and key[1].endswith("_chat_partitions"))


def rows() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, bot_id, content, created_at FROM chat_messages ORDER BY id")
        return cursor.fetchall()


@pytest.fixture
def executor():
    """A migration executor; whatever happens, the database ends migrated to the latest state."""
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    made = {p.name for p in partitions.partitions()}
    yield executor
    migrate(latest)
    assert partitions.is_partitioned()
    with connection.cursor() as cursor:  # the months the test's rows brought, gone with its rows
        cursor.execute("TRUNCATE chat_messages")
        for name in {p.name for p in partitions.partitions()} - made:
            cursor.execute(f'DROP TABLE "{name}"')


def test_the_migration_keeps_every_row_and_id_both_ways(executor):
    latest = executor.loader.graph.leaf_nodes()
    (before,) = [node.key for node in executor.loader.graph.node_map[ours(executor)].parents if node.key[0] == "bots"]
    bot = Bot.objects.create(name="Support", slug="support")
    for i, moment in enumerate(MONTHS):
        ChatMessage.objects.create(bot=bot, role=Role.USER, content=f"partitioned {i}", created_at=moment)
    ChatMessage.objects.filter(content="partitioned 3").delete()  # the sequence is ahead of the largest id
    kept = rows()

    # Backwards: a plain table again, with every row, its ids continuing after the sequence's.
    executor = migrate([before])
    assert not partitions.is_partitioned()
    assert rows() == kept
    plain = executor.loader.project_state(before).apps.get_model("bots", "ChatMessage")
    for i, moment in enumerate(MONTHS[:3]):
        plain.objects.create(bot_id=bot.pk, role=Role.USER, content=f"plain {i}", created_at=moment)
    kept = rows()
    first = kept[0][0]
    assert [r[0] for r in kept] == [first, first + 1, first + 2, first + 4, first + 5, first + 6]  # +3 was deleted

    # Forwards: partitioned, every row in its month's partition, ids going on after the largest.
    migrate(latest)
    assert partitions.is_partitioned()
    assert rows() == kept
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text, count(*) FROM chat_messages GROUP BY 1 ORDER BY 1")
        assert cursor.fetchall() == [
            ("chat_messages_2026_03", 2),
            ("chat_messages_2026_05", 2),
            ("chat_messages_2026_06", 2),
        ]
    # No gap between the oldest month and the months ahead: April too, empty.
    assert "chat_messages_2026_04" in {p.name for p in partitions.partitions()}
    new = ChatMessage.objects.create(bot=bot, role=Role.USER, content="after", created_at=MONTHS[-1])
    assert new.pk == first + 7
    assert ChatMessage.objects.filter(bot=bot).count() == 7
    assert ChatMessage.objects.get(pk=new.pk).created_at == MONTHS[-1]
