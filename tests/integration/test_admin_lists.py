"""The admin's big lists stay fast and honest: the same queries for 3 rows as for 30 (no
N+1), and no COUNT(*) of the whole chat_messages table once PostgreSQL estimates it large."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bots.models import Bot, ChatMessage, Role, Status
from deia.audit import audit
from deia.models import AuditLog
from deia.paginator import EstimatedCountPaginator, estimated_rows
from tests.support.perms import grant

pytestmark = pytest.mark.django_db

BOTS = reverse("admin:bots_bot_changelist")
MESSAGES = reverse("admin:bots_chatmessage_changelist")
AUDIT = reverse("admin:deia_auditlog_changelist")


def make_rows(n: int) -> None:
    """n bots (each in its own team), n chat messages and n audit rows with users."""
    start = Bot.objects.count()
    for i in range(start, start + n):
        team = Group.objects.create(name=f"team {i}")
        bot = Bot.objects.create(
            name=f"Bot {i}", slug=f"bot-{i}", team=team, status=Status.ERROR, last_error="boom", port=20000 + i
        )
        ChatMessage.objects.create(bot=bot, role=Role.USER, content=f"hello {i}")
    for i in range(start, start + n):
        audit("bot.start", actor=f"user{i}", target=f"bot-{i}")


def queries(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return [q["sql"] for q in captured.captured_queries]


# url -> its pinned query count for a superuser: session and user, then the list's own:
# bots: teams filter, count, rows; messages: bots filter, the count's estimate, count, rows,
# the date hierarchy's bounds; audit log: estimate, count, rows, bounds, the actions and
# actors filters.
BUDGETS = {BOTS: 6, MESSAGES: 7, AUDIT: 8}


@pytest.mark.parametrize("url", list(BUDGETS))
def test_a_list_runs_the_same_pinned_queries_for_3_rows_as_for_30(admin_client, url, django_assert_num_queries):
    make_rows(3)
    few = queries(admin_client, url)
    make_rows(27)
    with django_assert_num_queries(BUDGETS[url]):
        page = admin_client.get(url)
    assert page.context["cl"].result_count >= 30  # (the audit log also has the sign-in)
    assert len(few) == BUDGETS[url], "\n".join(few)


def test_a_team_members_lists_are_no_n_plus_1_either(client, django_user_model):
    team = Group.objects.create(name="blue")
    member = django_user_model.objects.create_user("member", password="x", is_staff=True)
    member.groups.add(team)
    grant(member, "bots.view_bot", "bots.chat_bot")
    client.force_login(member)
    make_rows(5)  # other teams' bots: not shown
    counts = {}
    for rows in (3, 30):
        while Bot.objects.filter(team=team).count() < rows:
            i = Bot.objects.count()
            bot = Bot.objects.create(name=f"Own {i}", slug=f"own-{i}", team=team)
            ChatMessage.objects.create(bot=bot, role=Role.USER, content="hi")
        counts[rows] = {url: len(queries(client, url)) for url in (BOTS, MESSAGES)}
        assert client.get(BOTS).context["cl"].result_count == rows
    assert counts[3] == counts[30]


# --- the chat message list's count --------------------------------------------------------
def text(page) -> str:
    """The page's words without tags."""
    return " ".join(re.sub(r"<[^>]+>", " ", page.content.decode()).split())


def analyse() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE chat_messages")


def test_a_large_unfiltered_message_list_shows_the_planners_estimate_without_counting(admin_client, settings):
    make_rows(12)
    analyse()
    assert estimated_rows("chat_messages") == 12
    settings.ADMIN_COUNT_ESTIMATE_ABOVE = 10
    sql = queries(admin_client, MESSAGES)
    assert not [q for q in sql if "COUNT(" in q.upper() and "chat_messages" in q], sql
    assert [q for q in sql if "reltuples" in q]
    page = admin_client.get(MESSAGES)
    assert page.context["cl"].paginator.estimated is True
    assert page.context["cl"].result_count == 12
    assert "about 12 chat messages" in text(page)


def test_a_filtered_list_or_a_small_table_is_counted_exactly(admin_client, settings):
    make_rows(12)
    analyse()
    settings.ADMIN_COUNT_ESTIMATE_ABOVE = 12  # not above: exact
    page = admin_client.get(MESSAGES)
    assert page.context["cl"].paginator.estimated is False
    assert "12 chat messages" in text(page) and "about 12" not in text(page)
    settings.ADMIN_COUNT_ESTIMATE_ABOVE = 10
    searched = admin_client.get(MESSAGES, {"q": "hello 1"})  # hello 1, hello 10, hello 11
    assert searched.context["cl"].paginator.estimated is False
    assert searched.context["cl"].result_count == 3


def test_a_never_analysed_table_has_no_estimate():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE never_analysed (id int)")
    assert estimated_rows("never_analysed") is None
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO never_analysed SELECT generate_series(1, 50)")
        cursor.execute("ANALYZE never_analysed")
    assert estimated_rows("never_analysed") == 50


def test_the_estimate_is_used_only_for_an_unfiltered_queryset(settings):
    make_rows(12)
    analyse()
    settings.ADMIN_COUNT_ESTIMATE_ABOVE = 10
    assert EstimatedCountPaginator(ChatMessage.objects.order_by("-id"), 10).count == 12
    filtered = EstimatedCountPaginator(ChatMessage.objects.filter(content="hello 3"), 10)
    assert (filtered.count, filtered.estimated) == (1, False)
    assert AuditLog.objects.exists()


def test_the_lists_first_page_of_messages_comes_from_the_index_not_a_scan_of_the_table(admin_client):
    make_rows(1)
    bot = Bot.objects.get()
    ChatMessage.objects.bulk_create(ChatMessage(bot=bot, role=Role.USER, content=f"m{i}") for i in range(5000))
    analyse()
    # The list joins the bots: statistics of bots_bot left by earlier tests (auto-analysed while
    # it held other rows) made the planner expect the join to keep 25 rows, and sort them.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE bots_bot")
    first_page = admin_client.get(MESSAGES).context["cl"].queryset[:100]
    plan = first_page.explain()
    assert "chat_created_idx" in plan, plan


# --- the date hierarchy ------------------------------------------------------------------
def message_at(bot: Bot, moment: datetime) -> None:
    ChatMessage.objects.create(bot=bot, role=Role.USER, content="hi", created_at=moment)


def hierarchy(page) -> list[str]:
    html = page.content.decode()
    nav = html[html.index('<nav class="toplinks">') : html.index("</nav>", html.index('<nav class="toplinks">'))]
    return [" ".join(re.sub(r"<[^>]+>", " ", part).split()) for part in re.findall(r"<a [^>]*>.*?</a>", nav)]


@pytest.mark.parametrize("url", [MESSAGES, AUDIT])
def test_the_date_hierarchy_reads_the_first_and_last_row_not_every_row(admin_client, url):
    make_rows(3)
    sql = queries(admin_client, url)
    assert not [q for q in sql if "DISTINCT" in q and "DATE_TRUNC" in q], sql


def test_the_date_hierarchy_offers_the_periods_between_the_first_and_last_message(admin_client):
    make_rows(1)
    bot = Bot.objects.get()
    ChatMessage.objects.all().delete()
    message_at(bot, datetime(2024, 11, 5, 12, tzinfo=UTC))
    message_at(bot, datetime(2026, 2, 3, 12, tzinfo=UTC))
    assert hierarchy(admin_client.get(MESSAGES)) == ["2024", "2025", "2026"]
    message_at(bot, datetime(2026, 4, 6, 12, tzinfo=UTC))
    year = admin_client.get(MESSAGES, {"created_at__year": "2026"})
    assert hierarchy(year) == ["&lsaquo; All dates", "February 2026", "March 2026", "April 2026"]
    month = admin_client.get(MESSAGES, {"created_at__year": "2026", "created_at__month": "2"})
    assert hierarchy(month) == ["&lsaquo; 2026", "February 3"]
    assert month.context["cl"].result_count == 1
    day = admin_client.get(MESSAGES, {"created_at__year": "2026", "created_at__month": "2", "created_at__day": "3"})
    assert hierarchy(day) == ["&lsaquo; February 2026"]
    assert day.context["cl"].result_count == 1


def test_a_list_within_one_month_starts_at_its_days_as_djangos_does(admin_client):
    make_rows(1)
    bot = Bot.objects.get()
    ChatMessage.objects.all().delete()
    for d in (3, 5):
        message_at(bot, datetime(2026, 2, d, 12, tzinfo=UTC))
    assert hierarchy(admin_client.get(MESSAGES)) == ["&lsaquo; 2026", "February 3", "February 4", "February 5"]
