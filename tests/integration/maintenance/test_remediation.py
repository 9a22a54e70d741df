"""The runbooks' remedies against the real PostgreSQL and Redis."""

from __future__ import annotations

import threading

import psycopg
import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from deia.flags import starts_frozen
from deia.models import AuditLog, RuntimeFlag
from ops.remediation import (
    RemediationError,
    cancel_query,
    clear_cache,
    freeze_starts,
    idle_connections,
    show_query,
    terminate_idle_connections,
    unfreeze_starts,
)
from tests.support.procs import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def backend_pid(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def state_of(conn: psycopg.Connection, pid: int) -> str | None:
    row = conn.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    return row[0] if row else None


def fresh_pool() -> None:
    """The idle connections of this process's own pool were idle sessions too, and are gone."""
    connection.close()
    connection.close_pool()


@pytest.fixture
def sleeping(pg_session):
    """sleeping(seconds) -> pid of a session busy in pg_sleep, in a thread of its own."""
    threads, errors = [], []

    def start(seconds: float) -> int:
        conn = pg_session(name="deia-test-busy")
        pid = backend_pid(conn)

        def work() -> None:
            try:
                conn.execute("SELECT pg_sleep(%s)", [seconds])
            except psycopg.Error as exc:
                errors.append(exc)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        threads.append(thread)
        watcher = pg_session(name="deia-test-watcher")
        wait_for(lambda: state_of(watcher, pid) == "active", what="the busy session to be active")
        return pid

    start.errors = errors
    yield start
    for thread in threads:
        thread.join(10)


def test_terminating_idle_connections_ends_an_idle_session_and_leaves_an_active_one(pg_session, sleeping):
    idle = pg_session(name="deia-test-idle")
    idle_pid = backend_pid(idle)
    other_db = pg_session(dbname="postgres", name="deia-test-elsewhere")  # another database: never ours
    busy_pid = sleeping(4)
    wait_for(lambda: idle_pid in {s["pid"] for s in idle_connections(0.5)}, what="the session to be idle 0.5 s")

    dry = terminate_idle_connections(0.5 / 60, dry_run=True, actor="test")
    assert idle_pid in {s["pid"] for s in dry["sessions"]} and dry["terminated"] == []
    assert not AuditLog.objects.filter(action="ops.terminate_idle_connections").exists()

    result = terminate_idle_connections(0.5 / 60, actor="test")
    fresh_pool()

    assert idle_pid in result["terminated"]
    assert busy_pid not in result["terminated"]
    assert backend_pid(other_db) not in result["terminated"]
    with pytest.raises(psycopg.OperationalError):
        idle.execute("SELECT 1")
    watcher = pg_session(name="deia-test-watcher")
    assert state_of(watcher, busy_pid) == "active"
    assert other_db.execute("SELECT 1").fetchone() == (1,)
    row = AuditLog.objects.get(action="ops.terminate_idle_connections")
    assert row.actor == "test" and idle_pid in row.details["terminated"]
    assert row.details["found"] == len(result["sessions"])


def test_a_listed_session_that_woke_and_went_idle_again_before_the_kill_survives(pg_session, monkeypatch, capsys):
    from ops import remediation

    old = pg_session(name="deia-test-idle-old")
    woke = pg_session(name="deia-test-idle-woke")
    fresh = pg_session(name="deia-test-idle-fresh")
    old_pid, woke_pid, fresh_pid = backend_pid(old), backend_pid(woke), backend_pid(fresh)
    wait_for(lambda: {old_pid, woke_pid} <= {s["pid"] for s in idle_connections(1)}, what="two sessions idle 1 s")
    fresh.execute("SELECT 1")  # idle for less than the threshold all along
    real_listing = remediation.idle_connections

    def listing_then_one_wakes(seconds: float) -> list[dict]:
        sessions = real_listing(seconds)
        woke.execute("SELECT 1")  # between the listing and the kill: idle again, but only just
        return sessions

    monkeypatch.setattr(remediation, "idle_connections", listing_then_one_wakes)
    call_command("terminate_idle_connections", "--older-than-minutes", str(1 / 60))
    fresh_pool()

    assert "woke up meanwhile and were spared" in capsys.readouterr().out
    with pytest.raises(psycopg.OperationalError):
        old.execute("SELECT 1")
    assert woke.execute("SELECT 1").fetchone() == (1,)
    assert fresh.execute("SELECT 1").fetchone() == (1,)
    row = AuditLog.objects.get(action="ops.terminate_idle_connections")
    assert old_pid in row.details["terminated"]
    assert woke_pid not in row.details["terminated"] and woke_pid in row.details["spared"]
    assert fresh_pid not in row.details["terminated"] + row.details["spared"]  # never listed
    assert row.actor.startswith("cli") and row.details["older_than_minutes"] == pytest.approx(1 / 60)


def test_the_command_lists_without_terminating_on_dry_run(pg_session, capsys):
    idle = pg_session(name="deia-test-idle")
    pid = backend_pid(idle)
    wait_for(lambda: pid in {s["pid"] for s in idle_connections(0.2)}, what="idle session")
    call_command("terminate_idle_connections", "--older-than-minutes", "0.003", "--dry-run")
    out = capsys.readouterr().out
    assert f"pid {pid}" in out and "would terminate" in out
    assert idle.execute("SELECT 1").fetchone() == (1,)


def test_cancel_query_shows_first_then_cancels_a_long_query(sleeping, capsys):
    pid = sleeping(30)
    call_command("cancel_query", str(pid))
    out = capsys.readouterr().out
    assert "pg_sleep" in out and "not cancelled" in out
    assert not AuditLog.objects.filter(action="ops.cancel_query").exists()
    with pytest.raises(RemediationError, match="under the 10 s threshold"):
        cancel_query(pid, actor="test")
    result = cancel_query(pid, min_seconds=0, actor="test")
    assert result["cancelled"] is True
    wait_for(lambda: sleeping.errors, what="the query to be cancelled")
    assert isinstance(sleeping.errors[0], psycopg.errors.QueryCanceled)
    row = AuditLog.objects.get(action="ops.cancel_query")
    assert row.target == str(pid) and "pg_sleep" in row.details["query"] and row.actor == "test"


def test_cancel_query_refuses_a_pid_outside_this_database(pg_session):
    elsewhere = pg_session(dbname="postgres")
    with pytest.raises(RemediationError, match="no session"):
        show_query(backend_pid(elsewhere))
    with pytest.raises(CommandError, match="no session"):
        call_command("cancel_query", str(backend_pid(elsewhere)), "--yes")


def test_clear_cache_removes_the_cache_keys_and_keeps_the_broker_queues(redis_client):
    cache.set("page", "cached", 60)
    cache.set("other", "cached", 60)
    redis_client.lpush("maintenance", "a queued task")  # what a Celery queue looks like
    with pytest.raises(CommandError, match="--yes"):
        call_command("clear_cache")
    assert cache.get("page") == "cached"
    removed = clear_cache(actor="test")
    assert removed == 2
    assert cache.get("page") is None
    assert redis_client.llen("maintenance") == 1
    row = AuditLog.objects.get(action="ops.clear_cache")
    assert row.details == {"keys": 2} and row.actor == "test"


def test_freeze_and_unfreeze_are_stored_audited_and_idempotent():
    assert not starts_frozen()
    assert freeze_starts(actor="alice") is True
    assert starts_frozen()
    assert freeze_starts(actor="alice") is False  # nothing changed, nothing audited
    flag = RuntimeFlag.objects.get(name=RuntimeFlag.FREEZE_STARTS)
    assert flag.enabled and flag.updated_by == "alice"
    call_command("unfreeze_starts")
    assert not starts_frozen()
    actions = list(AuditLog.objects.order_by("id").values_list("action", "actor"))
    assert actions[0] == ("ops.freeze_starts", "alice")
    assert actions[1][0] == "ops.unfreeze_starts" and actions[1][1].startswith("cli")
    assert len(actions) == 2
    assert unfreeze_starts(actor="alice") is False


def test_the_freeze_refuses_a_start_and_the_refusal_is_audited(redis_client):
    from bots.lifecycle import StartRefused, request_start
    from bots.models import Backend, Bot, DesiredState

    bot = Bot.objects.create(name="Support", slug="support", backend=Backend.ECHO, model_name="echo")
    call_command("freeze_starts")
    with pytest.raises(StartRefused, match="frozen"):
        request_start(bot, actor="alice")
    bot.refresh_from_db()
    assert bot.desired_state == DesiredState.STOPPED
    refused = AuditLog.objects.get(action="bot.start_refused")
    assert refused.actor == "alice" and "frozen" in refused.details["reason"]
    call_command("unfreeze_starts")  # takes effect at once, no restart
    request_start(bot, actor="alice")
    bot.refresh_from_db()
    assert bot.desired_state == DesiredState.RUNNING


def running(slug: str, recent: int, old: int = 0):
    """A bot with a process, `recent` messages in the last hour and `old` ones before."""
    from datetime import timedelta

    from django.utils import timezone

    from bots.models import Backend, Bot, ChatMessage, DesiredState, Role, Status

    bot = Bot.objects.create(name=slug, slug=slug, backend=Backend.ECHO, desired_state=DesiredState.RUNNING)
    Bot.objects.filter(pk=bot.pk).update(status=Status.RUNNING, started_at=timezone.now())
    for i in range(recent):
        ChatMessage.objects.create(bot=bot, role=Role.USER, content=str(i))
    for i in range(old):  # busy two hours ago: does not count
        ChatMessage.objects.create(
            bot=bot, role=Role.USER, content=str(i), created_at=timezone.now() - timedelta(hours=2)
        )
    return bot


def test_stop_least_used_stops_the_quietest_running_bots_down_to_the_target(redis_client, capsys):
    from bots.models import Backend, Bot, DesiredState

    running("busy", 9)
    running("steady", 5)
    running("quiet", 1, old=50)
    running("idle", 0)
    Bot.objects.create(name="off", slug="off", backend=Backend.ECHO)  # not running: not counted

    call_command("stop_least_used", "--keep", "2")

    assert "stopping 2 bots to keep 2: idle, quiet" in capsys.readouterr().out
    desired = dict(Bot.objects.values_list("slug", "desired_state"))
    assert desired == {
        "busy": DesiredState.RUNNING,
        "steady": DesiredState.RUNNING,
        "quiet": DesiredState.STOPPED,
        "idle": DesiredState.STOPPED,
        "off": DesiredState.STOPPED,
    }
    assert sorted(AuditLog.objects.filter(action="bot.stop").values_list("target", flat=True)) == ["idle", "quiet"]
    summary = AuditLog.objects.get(action="ops.stop_least_used")
    assert summary.actor.startswith("cli") and summary.details["running_before"] == 4
    assert summary.details["stopped"] == [
        {"bot": "idle", "messages_last_hour": 0},
        {"bot": "quiet", "messages_last_hour": 1},
    ]
    assert summary.details["skipped_deleted"] == []


def test_stop_least_used_skips_a_bot_deleted_meanwhile_and_still_writes_its_summary(redis_client, monkeypatch, capsys):
    import bots.lifecycle
    from bots.models import Bot, DesiredState

    running("busy", 9)
    running("quiet", 1)
    running("idle", 0)
    real_stop = bots.lifecycle.request_stop

    def stop_while_someone_deletes_the_next(bot, **kwargs):
        Bot.objects.filter(slug="quiet").delete()  # deleted between the listing and its turn
        return real_stop(bot, **kwargs)

    monkeypatch.setattr(bots.lifecycle, "request_stop", stop_while_someone_deletes_the_next)
    call_command("stop_least_used", "--keep", "1")

    assert capsys.readouterr().out.strip() == "stopping 1 bots to keep 1: idle; skipped quiet (deleted meanwhile)"
    assert dict(Bot.objects.values_list("slug", "desired_state")) == {
        "busy": DesiredState.RUNNING,
        "idle": DesiredState.STOPPED,
    }
    assert list(AuditLog.objects.filter(action="bot.stop").values_list("target", flat=True)) == ["idle"]
    summary = AuditLog.objects.get(action="ops.stop_least_used")
    assert summary.details["running_before"] == 3 and summary.details["keep"] == 1
    assert summary.details["stopped"] == [{"bot": "idle", "messages_last_hour": 0}]
    assert summary.details["skipped_deleted"] == ["quiet"]


def test_stop_least_used_writes_its_summary_when_it_fails_part_way(redis_client, monkeypatch):
    import bots.lifecycle
    from bots.models import Bot, DesiredState

    running("quiet", 1)
    running("idle", 0)
    real_stop, calls = bots.lifecycle.request_stop, []

    def second_stop_fails(bot, **kwargs):
        calls.append(bot.slug)
        if len(calls) == 2:
            raise RuntimeError("database went away")
        return real_stop(bot, **kwargs)

    monkeypatch.setattr(bots.lifecycle, "request_stop", second_stop_fails)
    with pytest.raises(CommandError, match=r"^stop_least_used failed part-way \(RuntimeError: database went away\)"):
        call_command("stop_least_used", "--keep", "0")
    assert Bot.objects.get(slug="idle").desired_state == DesiredState.STOPPED
    assert Bot.objects.get(slug="quiet").desired_state == DesiredState.RUNNING
    summary = AuditLog.objects.get(action="ops.stop_least_used")
    assert summary.details["stopped"] == [{"bot": "idle", "messages_last_hour": 0}]
    assert summary.details["error"] == "RuntimeError: database went away"
