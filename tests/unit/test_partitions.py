"""chat_messages' partitions: the month arithmetic, the restore order of a dump's table of
contents, and SQLite, which keeps a plain table and the row deletion."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from bots import partitions
from bots.models import Bot, ChatMessage, Role
from ops.diagnose import Level, check_chat_partitions
from ops.maintenance.backup import restore_order
from ops.maintenance.database import chat_partitions, purge_messages


def test_months_are_utc_calendar_months_across_the_year_end():
    assert partitions.month_of(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == date(2026, 12, 1)
    assert partitions.add_months(date(2026, 11, 1), 3) == date(2027, 2, 1)
    assert partitions.add_months(date(2026, 1, 1), -1) == date(2025, 12, 1)
    assert partitions.months_between(date(2026, 11, 1), datetime(2027, 1, 5, tzinfo=UTC)) == [
        date(2026, 11, 1),
        date(2026, 12, 1),
        date(2027, 1, 1),
    ]
    assert partitions.partition_name(date(2027, 2, 1)) == "chat_messages_2027_02"
    assert partitions.bounds(date(2026, 12, 1)) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )


LISTING = """;
; Archive created at 2026-12-01 20:00:00 UTC
266; 1259 1355390 TABLE public chat_messages deia
278; 1259 1355508 TABLE public chat_messages_default deia
274; 1259 1355468 TABLE public chat_messages_2026_12 deia
3388; 0 0 TABLE ATTACH public chat_messages_2026_12 deia
3392; 0 0 TABLE ATTACH public chat_messages_default deia
3500; 2606 1355400 CONSTRAINT public bots_bot bots_bot_pkey deia
3510; 2606 1355401 CONSTRAINT public chat_messages chat_messages_pkey deia
3520; 2606 1355402 CONSTRAINT public chat_messages_2026_12 chat_messages_2026_12_pkey deia
3530; 2606 1355403 CONSTRAINT public chat_messages_default chat_messages_default_pkey deia
3600; 0 0 INDEX ATTACH public chat_messages_2026_12_pkey deia
"""


def test_a_restore_creates_partitions_constraints_first_so_that_clean_drops_them_last():
    lines = restore_order(LISTING).splitlines()
    constraints = [line.split()[6] for line in lines if " CONSTRAINT " in line]
    assert constraints == [
        "chat_messages_2026_12_pkey",
        "chat_messages_default_pkey",
        "bots_bot_pkey",
        "chat_messages_pkey",
    ]
    assert sorted(lines) == sorted(LISTING.splitlines())  # nothing lost, nothing added
    plain = "\n".join(line for line in LISTING.splitlines() if "chat_messages_" not in line) + "\n"
    assert restore_order(plain) == plain  # a dump without partitions keeps its order


@pytest.mark.django_db
def test_sqlite_keeps_a_plain_table_and_deletes_expired_messages_by_row(settings):
    # make test-unit runs this on SQLite; make test runs tests/unit on PostgreSQL too, where the
    # migration made the table partitioned (tests/integration/chat/test_partitions.py covers that side).
    if connection.vendor == "postgresql":
        assert partitions.is_partitioned()
        return
    assert not partitions.is_partitioned()
    assert chat_partitions().summary == "skipped: chat_messages is partitioned on PostgreSQL only"
    assert check_chat_partitions().level == Level.OK
    bot = Bot.objects.create(name="Support", slug="support")
    ChatMessage.objects.create(bot=bot, role=Role.USER, content="old", created_at=timezone.now() - timedelta(days=40))
    ChatMessage.objects.create(bot=bot, role=Role.USER, content="new")
    outcome = purge_messages(days=30, batch=1)
    assert outcome.details["deleted"] == 1 and outcome.changed
    assert list(ChatMessage.objects.values_list("content", flat=True)) == ["new"]
