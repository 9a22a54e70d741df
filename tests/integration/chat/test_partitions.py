"""chat_messages partitioned by month (PostgreSQL): partitions made ahead, retention by dropping
whole months, the default partition's warning, the indexes the reads use, and the API and admin
over the partitioned table."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from bots import partitions
from bots.models import Backend, Bot, ChatMessage, Role
from deia.models import AuditLog
from ops import maintenance
from ops.diagnose import Level, check_chat_partitions


def at(month: date, day: int = 10) -> datetime:
    return datetime(month.year, month.month, day, 12, tzinfo=UTC)


def message(bot: Bot, created_at: datetime, content: str = "hello") -> ChatMessage:
    return ChatMessage.objects.create(bot=bot, role=Role.USER, content=content, created_at=created_at)


def stored_in(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM chat_messages WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def names() -> list[str]:
    return [p.name for p in partitions.partitions()]


THIS = partitions.month_of(timezone.now())
OLD = date(2025, 1, 1)  # long before any partition the migration made


@pytest.fixture
def bot(db) -> Bot:
    return Bot.objects.create(name="Support", slug="support", backend=Backend.ECHO, model_name="echo")


@pytest.fixture
def dropped_afterwards(transactional_db):
    """For tests that commit: the partitions they add are dropped again, the migration's kept."""
    before = set(names())
    yield
    with connection.cursor() as cursor:
        for name in set(names()) - before:
            cursor.execute(f'DROP TABLE "{name}"')
    assert set(names()) == before


@pytest.mark.django_db
def test_the_table_is_partitioned_by_month_with_a_default_and_the_models_indexes():
    assert partitions.is_partitioned()
    assert partitions.partition_name(THIS) in names()
    assert partitions.partition_name(partitions.add_months(THIS, 3)) in names()  # CHAT_PARTITIONS_AHEAD
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('chat_messages_default') IS NOT NULL")
        assert cursor.fetchone() == (True,)
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [partitions.partition_name(THIS)]
        )
        definitions = dict(cursor.fetchall())
    # Declared on the parent, so every partition has them; the key holds the partition key.
    assert any(d.endswith("(id, created_at)") and "UNIQUE" in d for d in definitions.values()), definitions
    for columns in ("(bot_id, created_at DESC)", "(conversation, created_at DESC)", "(created_at DESC, id DESC)"):
        assert any(d.endswith(columns) for d in definitions.values()), (columns, definitions)


@pytest.mark.django_db
def test_partitions_ahead_are_created_once_and_each_creation_is_audited(bot):
    later = partitions.add_months(THIS, 12)
    created = partitions.create_ahead(2, now=at(later))
    assert created == [partitions.partition_name(partitions.add_months(later, n)) for n in range(3)]
    assert partitions.create_ahead(2, now=at(later)) == []  # idempotent
    rows = AuditLog.objects.filter(action="chat.partition_create").order_by("id")
    assert [r.target for r in rows] == created
    assert rows[0].details["from"] == f"{later:%Y-%m}-01T00:00:00+00:00" and rows[0].actor == "maintenance"
    # A message of that month lands in its partition.
    assert stored_in(message(bot, at(later)).pk) == created[0]


@pytest.mark.django_db
def test_rows_waiting_in_the_default_partition_move_into_their_months_partition(bot):
    early = message(bot, at(OLD), "early")
    assert stored_in(early.pk) == partitions.DEFAULT
    check = check_chat_partitions()
    assert check.level == Level.WARN and check.value == "1 rows in chat_messages_default"
    assert "manage.py chat_partitions" in check.next_step

    assert partitions.create_ahead(0) == [partitions.partition_name(OLD)]  # this month's exists already
    assert stored_in(early.pk) == partitions.partition_name(OLD)
    assert ChatMessage.objects.get(pk=early.pk).content == "early"
    assert partitions.default_rows() == 0
    audit = AuditLog.objects.get(action="chat.partition_create")
    assert audit.details["moved_from_default"] == 1
    assert check_chat_partitions().level == Level.OK


def test_the_job_runs_from_its_command_once_records_the_run_and_is_scheduled(dropped_afterwards, settings):
    settings.CHAT_PARTITIONS_AHEAD = 5  # two more than the migration made
    out = io.StringIO()
    call_command("chat_partitions", stdout=out)
    expected = [partitions.partition_name(partitions.add_months(THIS, n)) for n in (4, 5)]
    assert out.getvalue().startswith(f"chat_partitions ok: created 2 partitions ({', '.join(expected)})")
    assert [r.target for r in AuditLog.objects.filter(action="chat.partition_create").order_by("id")] == expected
    call_command("chat_partitions", stdout=io.StringIO())
    assert AuditLog.objects.filter(action="chat.partition_create").count() == 2  # nothing the second time
    from ops.models import MaintenanceRun

    runs = MaintenanceRun.objects.filter(job="chat_partitions").order_by("id")
    assert [r.status for r in runs] == ["ok", "ok"] and runs[1].details["created"] == []
    from django_celery_beat.models import PeriodicTask

    call_command("install_schedules", stdout=io.StringIO())
    assert PeriodicTask.objects.get(name="maintenance: chat_partitions").task == "ops.tasks.chat_partitions"


@pytest.mark.django_db
def test_retention_drops_whole_expired_months_audited_and_leaves_the_others(bot):
    months = [partitions.add_months(OLD, n) for n in range(3)]  # 2025-01 .. 2025-03
    for month in months:
        partitions.ensure_month(month)
        for i in range(3):
            message(bot, at(month, day=1 + i), f"{month:%m} {i}")
    recent = message(bot, timezone.now(), "recent")
    straddling = at(months[2], day=20)
    with connection.cursor() as cursor:  # the deferred foreign key checks of the test's own inserts
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    dropped = partitions.drop_expired(straddling)
    assert [(d.name, d.rows) for d in dropped] == [
        (partitions.partition_name(months[0]), 3),
        (partitions.partition_name(months[1]), 3),
    ]
    # The month straddling the cutoff is kept whole, even its rows older than the cutoff.
    assert sorted(ChatMessage.objects.values_list("content", flat=True)) == ["03 0", "03 1", "03 2", "recent"]
    assert partitions.partition_name(months[2]) in names() and partitions.partition_name(months[0]) not in names()
    assert ChatMessage.objects.filter(pk=recent.pk).exists()
    rows = AuditLog.objects.filter(action="chat.partition_drop").order_by("id")
    assert [(r.target, r.details["rows"]) for r in rows] == [(d.name, 3) for d in dropped]


def test_purge_messages_drops_partitions_and_deletes_default_rows(dropped_afterwards, settings, bot):
    old = partitions.add_months(THIS, -24)
    partitions.ensure_month(old)
    for i in range(4):
        message(bot, at(old), f"old {i}")
    before = partitions.add_months(THIS, -30)  # no partition: in the default one
    message(bot, at(before), "older")
    message(bot, timezone.now(), "recent")
    settings.CHAT_RETENTION_DAYS = 365
    run = maintenance.run("purge_messages", actor="test", batch=1)
    run.refresh_from_db()
    assert run.status == "ok", run.summary
    assert run.details["dropped_partitions"] == [partitions.partition_name(old)]
    assert (run.details["dropped_rows"], run.details["deleted"], run.details["batches"]) == (4, 1, 1)
    assert run.summary == "dropped 1 partitions (4 chat messages) and deleted 1 chat messages older than 365 days"
    assert list(ChatMessage.objects.values_list("content", flat=True)) == ["recent"]
    drop = AuditLog.objects.get(action="chat.partition_drop")
    assert (drop.target, drop.details["rows"], drop.actor) == (partitions.partition_name(old), 4, "maintenance")
    assert AuditLog.objects.filter(action="maintenance.purge_messages").count() == 1  # the row deletion


def partition_index(parent: str, partition: str) -> str:
    """The index `partition` has for the parent's index `parent`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_index x ON x.indexrelid = c.oid WHERE i.inhparent = %s::regclass AND x.indrelid = %s::regclass",
            [parent, partition],
        )
        return cursor.fetchone()[0]


def indexes_read(explained: str) -> set[str]:
    return set(re.findall(r"(?:Index (?:Only )?Scan(?: Backward)? using|Bitmap Index Scan on) (\w+)", explained))


@pytest.mark.django_db
def test_a_conversations_last_messages_and_a_bots_history_read_their_indexes(bot):
    others = Bot.objects.bulk_create(Bot(name=f"Other {i}", slug=f"other-{i}") for i in range(50))
    start, _ = partitions.bounds(THIS)
    with connection.cursor() as cursor:
        # 20,000 messages of this month: 51 bots, conversations of 20.
        cursor.execute(
            "INSERT INTO chat_messages (bot_id, conversation, role, content, created_at, error, interrupted, "
            "request_id) SELECT (%s::bigint[])[1 + i %% 51], md5('c' || (i / 20))::uuid, 'user', 'm' || i, "
            "%s + i * interval '1 second', '', false, '' FROM generate_series(1, 20000) AS i",
            [[bot.pk, *(o.pk for o in others)], start],
        )
        cursor.execute("ANALYZE chat_messages")
    this = partitions.partition_name(THIS)
    conversation = ChatMessage.objects.filter(bot=bot).values_list("conversation", flat=True).first()
    newest = ChatMessage.objects.order_by("-created_at", "-id")

    by_conversation = newest.filter(conversation=conversation)[:50].explain()
    assert partition_index("chat_conversation_idx", this) in indexes_read(by_conversation), by_conversation
    assert f"Seq Scan on {this}" not in by_conversation, by_conversation

    by_bot = newest.filter(bot=bot)[:100].explain()
    assert partition_index("chat_bot_created_idx", this) in indexes_read(by_bot), by_bot
    assert f"Seq Scan on {this}" not in by_bot, by_bot
    assert len(list(newest.filter(bot=bot)[:100])) == 100


@pytest.mark.django_db
def test_the_guides_count_and_the_admins_estimate_cover_every_partition(bot):
    message(bot, timezone.now())
    message(bot, at(OLD))  # default partition
    partitions.ensure_month(partitions.add_months(OLD, 1))
    message(bot, at(partitions.add_months(OLD, 1)))
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM chat_messages;")
        assert cursor.fetchone() == (3,)
        cursor.execute("ANALYZE chat_messages")
    from deia.paginator import estimated_rows

    assert estimated_rows("chat_messages") == 3


def test_the_api_reads_and_stores_chats_over_the_partitioned_table(running_bot, web):
    api = web()
    bot, _ = running_bot("echoer", backend=Backend.ECHO)
    message(bot, at(OLD), "from the default partition")
    answer = api.post(f"/api/bots/{bot.pk}/messages", {"message": "ping"})
    assert answer.status_code == 200, answer.text
    stored = ChatMessage.objects.filter(bot=bot).order_by("-created_at", "-id")
    assert [stored_in(m.pk) for m in stored[:2]] == [partitions.partition_name(THIS)] * 2
    history = api.get(f"/api/bots/{bot.pk}/messages").json()
    assert history["count"] == 3
    assert [m["content"] for m in history["results"]][-1] == "from the default partition"
    assert [m["role"] for m in history["results"]][:2] == ["assistant", "user"]


@pytest.mark.django_db
def test_the_admins_message_list_and_bot_page_show_messages_of_several_partitions(admin_client, bot):
    recent = message(bot, timezone.now() - timedelta(minutes=1), "this month")
    early = message(bot, at(OLD), "long ago")
    assert stored_in(recent.pk) != stored_in(early.pk)
    page = admin_client.get(reverse("admin:bots_chatmessage_changelist"))
    assert page.status_code == 200
    assert "this month" in page.content.decode() and "long ago" in page.content.decode()
    change = admin_client.get(reverse("admin:bots_chatmessage_change", args=[early.pk]))
    assert change.status_code == 200 and "long ago" in change.content.decode()
    bot_page = admin_client.get(reverse("admin:bots_bot_change", args=[bot.pk]))
    assert bot_page.status_code == 200 and "this month" in bot_page.content.decode()
