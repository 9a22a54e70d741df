"""The capacity assessment on this installation's real data: messages, storage runs, the backup disk."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from bots.models import Backend, Bot, ChatMessage, Role
from ops.console import samples
from ops.console.capacity import State, assess, backup_disk
from ops.console.figures import PrometheusSource
from tests.plugins.console import run
from tests.support.procs import free_port

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def bot() -> Bot:
    return Bot.objects.create(name="Support", slug="support", backend=Backend.ECHO)


def ask(bot: Bot, days_ago: float, n: int = 1) -> None:
    for _ in range(n):
        ChatMessage.objects.create(bot=bot, role=Role.USER, content="q", created_at=NOW - timedelta(days=days_ago))


def triggers(capacity) -> dict:
    return {t.key: t for t in capacity.triggers}


def test_messages_growing_week_over_week_hold_the_trigger(bot):
    ask(bot, 10, 10)  # the week before: 10
    ask(bot, 2, 12)  # this week: 12, +20 %
    trigger = triggers(assess(NOW))["messages"]
    assert trigger.state == State.HOLDS
    assert trigger.value == "1.7 a day this week, 1.4 the week before (+20%)"


def test_messages_flat_week_over_week_leave_it_clear(bot):
    ask(bot, 10, 10)
    ask(bot, 2, 11)  # +10 %: at the threshold, not above it
    assert triggers(assess(NOW))["messages"].state == State.CLEAR


def test_a_fleet_without_history_has_no_data_for_growth(bot):
    ask(bot, 1, 5)
    trigger = triggers(assess(NOW))["messages"]
    assert trigger.state == State.NO_DATA and "both of the last two weeks" in trigger.value


def test_the_live_figures_are_measured_here():
    t = triggers(assess(NOW))
    # PostgreSQL's own count against its max_connections, far below 80 % in a test run.
    assert t["db_connections"].state == State.CLEAR and " of " in t["db_connections"].value
    assert t["memory"].state != State.NO_DATA and "of the host's memory in use" in t["memory"].value
    # Without Prometheus: this process's CPU time since it started, never a made-up zero.
    assert t["cpu"].state != State.NO_DATA and "no Prometheus" in t["cpu"].source
    # The API's p95 needs a source of latency over two weeks: none sampled here.
    assert t["api_p95"].state == State.NO_DATA and t["api_p95"].source == "the application's own samples"


def latency(days_ago: float, bucket: str, n: int = 100) -> None:
    samples.upsert([(NOW - timedelta(days=days_ago), 3600, samples.LATENCY, bucket, n)], add=True)


@pytest.mark.parametrize(("this_week", "state"), [("0.2", State.HOLDS), ("0.1", State.CLEAR)])
def test_the_api_p95_rising_week_over_week_holds_the_trigger(this_week, state):
    latency(10, "0.1")  # the week before: p95 97.5 ms (interpolated in the 50-100 ms bucket)
    latency(3, this_week)  # this week: 195 ms (+100 %) or the same
    trigger = triggers(assess(NOW))["api_p95"]
    assert trigger.state == state
    assert trigger.value.startswith(
        "195 ms this week, 98 ms the week before (+100%)" if state == State.HOLDS else "98 ms"
    )


def test_an_unreachable_prometheus_is_no_data_with_the_reason():
    src = PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout=2)
    t = triggers(assess(NOW, src=src))
    for key in ("cpu", "api_p95"):
        assert t[key].state == State.NO_DATA and "did not answer" in t[key].value, t[key]
    assert t["memory"].state != State.NO_DATA  # what is measured here still is


def test_messages_per_day_per_bot_are_projected_from_the_stored_days(bot):
    quiet = Bot.objects.create(name="Quiet", slug="quiet", backend=Backend.ECHO)
    for days_ago, n in [(3.4, 1), (2.4, 2), (1.4, 3), (0.4, 4)]:  # +1 a day, in each UTC day
        ask(bot, days_ago, n)
    ask(quiet, 0.4, 1)
    capacity = assess(NOW, history_days=4)
    support, other = capacity.messages  # busiest first
    assert (support.name, other.name) == ("support", "quiet")
    assert [v for _, v in support.points] == [1, 2, 3, 4]
    assert support.slope_per_day == pytest.approx(1.0)
    assert support.in_30_days == pytest.approx(support.now + 30)


def test_database_and_backup_sizes_are_projected_from_the_jobs_runs():
    run("db_report", NOW - timedelta(days=20), database_bytes=1000)
    run("db_report", NOW - timedelta(days=10), database_bytes=2000)
    run("db_report", NOW - timedelta(days=5), status="failed")
    run("backup", NOW - timedelta(days=2), size=300)
    run("backup", NOW - timedelta(days=1), size=400)
    capacity = assess(NOW)
    database = capacity.database
    assert [v for _, v in database.points[:2]] == [1000, 2000]
    assert database.points[-1][0] == NOW and database.points[-1][1] > 2000  # the size measured now
    backups = capacity.backups
    assert backups.slope_per_day == pytest.approx(100.0) and backups.now == pytest.approx(500.0)


def test_days_until_the_backup_disk_is_full_at_the_current_rate(settings, tmp_path):
    settings.BACKUP_DIR = tmp_path / "backups"  # not made yet: its file system is tmp_path's
    run("backup", NOW - timedelta(days=3), size=700_000)
    run("backup", NOW - timedelta(days=2), size=700_000)
    run("rotate_backups", NOW - timedelta(days=1), freed_bytes=400_000)
    run("backup", NOW - timedelta(days=30), size=10**12)  # outside the window
    disk = backup_disk(NOW, window_days=10)
    assert (disk.written_bytes, disk.freed_bytes) == (1_400_000, 400_000)
    assert disk.growth_per_day == 100_000
    free = shutil.disk_usage(tmp_path).free
    assert disk.days_until_full == pytest.approx(free / 100_000, rel=0.01)


def test_a_backup_disk_that_is_not_growing_is_never_full(settings, tmp_path):
    settings.BACKUP_DIR = tmp_path
    run("backup", NOW - timedelta(days=3), size=1000)
    run("rotate_backups", NOW - timedelta(days=1), freed_bytes=1000)
    assert backup_disk(NOW).days_until_full is None


def test_the_page_charts_messages_per_bot_and_the_database_with_text_alternatives(admin_client, bot):
    now = timezone.now()
    for days_ago in (1, 2, 2):
        ChatMessage.objects.create(bot=bot, role=Role.USER, content="q", created_at=now - timedelta(days=days_ago))
    run("db_report", now - timedelta(days=7), database_bytes=1000)
    text = admin_client.get(reverse("ops-capacity")).content.decode()
    assert 'id="cap-chart-messages"' in text and 'id="cap-chart-database"' in text
    assert text.count('class="deia-chart" role="img"') == 2
    assert "Messages per day, the 1 busiest bots, last 28 days" in text  # the text alternative


def test_the_page_costs_the_same_queries_for_many_bots(admin_client, django_assert_max_num_queries):
    now = timezone.now()
    for i in range(12):
        bot = Bot.objects.create(name=f"Bot {i}", slug=f"bot-{i}", backend=Backend.ECHO)
        ask(bot, (NOW - now).total_seconds() / 86400 + 1, 2)  # yesterday, whatever NOW is
    with django_assert_max_num_queries(16):
        response = admin_client.get(reverse("ops-capacity"))
    assert len(response.context["capacity"].messages) == 12
