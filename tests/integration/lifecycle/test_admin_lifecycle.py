"""Admin actions, the bot page and deletion, through the admin client."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from bots.lifecycle.process import can_bind, pid_alive
from bots.models import Bot, ChatMessage, DesiredState, Role, Status
from deia.models import AuditLog
from tests.support.procs import wait_for

CHANGELIST = "/admin/bots/bot/"


def run_action(client, action: str, bots: list[Bot]):
    return client.post(
        CHANGELIST, {"action": action, "_selected_action": [b.pk for b in bots]}, follow=True, REMOTE_ADDR="10.9.8.7"
    )


@pytest.mark.django_db
def test_start_action_reports_each_bot_and_refusals_at_error_level(admin_client, settings):
    settings.MAX_BOTS = 1
    first = Bot.objects.create(name="Alpha", slug="alpha")
    second = Bot.objects.create(name="Beta", slug="beta")
    response = run_action(admin_client, "start_bots", [first, second])
    messages = [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]
    assert ("success", "Alpha: start requested") in messages
    assert any(level == "error" and text.startswith("Beta: start refused: At most 1") for level, text in messages)
    assert Bot.objects.get(pk=first.pk).desired_state == DesiredState.RUNNING
    assert Bot.objects.get(pk=second.pk).desired_state == DesiredState.STOPPED
    rows = list(
        AuditLog.objects.filter(action__startswith="bot.").order_by("id").values_list("action", "actor", "ip", "target")
    )
    assert rows == [("bot.start", "admin", "10.9.8.7", "alpha"), ("bot.start_refused", "admin", "10.9.8.7", "beta")]


@pytest.mark.django_db
def test_stop_and_restart_actions_set_the_desired_state_and_audit(admin_client):
    bot = Bot.objects.create(name="Alpha", slug="alpha", desired_state=DesiredState.RUNNING)
    run_action(admin_client, "stop_bots", [bot])
    assert Bot.objects.get(pk=bot.pk).desired_state == DesiredState.STOPPED
    run_action(admin_client, "restart_bots", [bot])
    assert Bot.objects.get(pk=bot.pk).desired_state == DesiredState.RUNNING
    assert list(AuditLog.objects.filter(action__startswith="bot.").order_by("id").values_list("action", flat=True)) == [
        "bot.stop",
        "bot.restart",
    ]


@pytest.mark.django_db
def test_the_bot_page_shows_the_process_and_the_recent_messages(admin_client, django_assert_max_num_queries):
    bot = Bot.objects.create(name="Alpha", slug="alpha")
    Bot.objects.filter(pk=bot.pk).update(
        status=Status.RUNNING, pid=4242, host="h1", port=18321, restart_count=3, last_error="model went away"
    )
    for i in range(25):
        ChatMessage.objects.create(bot=bot, role=Role.USER, content=f"question number {i}")
    with django_assert_max_num_queries(12):
        page = admin_client.get(reverse("admin:bots_bot_change", args=[bot.pk]))
    text = page.content.decode()
    for expected in ("4242", "h1:18321", "model went away", "Recent messages", "question number 24"):
        assert expected in text, expected
    assert "question number 4<" not in text  # only the 20 newest
    assert 'name="desired_state"' not in text  # changed only through the audited actions


def test_deleting_a_running_bot_in_the_admin_stops_its_process_first(admin_client, bot_worker):
    from bots import lifecycle

    bot_worker("host-a")
    bot = Bot.objects.create(name="Doomed", slug="doomed")
    lifecycle.request_start(bot, actor="test")
    wait_for(lambda: Bot.objects.get(pk=bot.pk).status == Status.RUNNING, timeout=30, what="bot running")
    bot.refresh_from_db()
    pid, port = bot.pid, bot.port
    response = admin_client.post(reverse("admin:bots_bot_delete", args=[bot.pk]), {"post": "yes"}, follow=True)
    # Not "deleted successfully": it is not deleted yet.
    assert [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)] == [
        ("warning", "Doomed: its process is being stopped; the bot will be deleted once the process has exited.")
    ]
    wait_for(lambda: not Bot.objects.filter(pk=bot.pk).exists(), timeout=30, what="bot row deleted")
    assert not pid_alive(pid) and can_bind(port)
    actions = list(AuditLog.objects.filter(target="doomed").order_by("id").values_list("action", flat=True))
    assert actions[-3:] == ["bot.delete", "bot.stopped", "bot.deleted"]


@pytest.mark.django_db
def test_bulk_deleting_reports_the_bots_deleted_now_and_warns_about_the_ones_being_stopped(admin_client):
    idle = Bot.objects.create(name="Idle", slug="idle")
    busy = Bot.objects.create(name="Busy", slug="busy")
    Bot.objects.filter(pk=busy.pk).update(status=Status.RUNNING, pid=4242, host="host-z", port=19598)
    response = run_action(admin_client, "delete_selected", [idle, busy])
    assert response.status_code == 200  # the confirmation page
    response = admin_client.post(
        CHANGELIST,
        {"action": "delete_selected", "_selected_action": [idle.pk, busy.pk], "post": "yes"},
        follow=True,
    )
    messages = [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]
    assert messages == [
        ("warning", "Busy: its process is being stopped; the bot will be deleted once the process has exited."),
        ("success", "Deleted: Idle."),
    ]
    assert not Bot.objects.filter(pk=idle.pk).exists()
    assert Bot.objects.get(pk=busy.pk).desired_state == DesiredState.STOPPED


@pytest.mark.django_db
def test_the_bot_page_shows_the_lifecycle_table_with_the_ways_out_of_its_status_in_bold(admin_client):
    bot = Bot.objects.create(name="Gamma", slug="gamma")
    Bot.objects.filter(pk=bot.pk).update(status=Status.CRASHED)
    page = admin_client.get(reverse("admin:bots_bot_change", args=[bot.pk])).content.decode()
    assert "Allowed transitions" in page
    bold = re.findall(r'<tr style="font-weight:bold"><td>([^<]*)</td><td>([^<]*)</td>', page)
    assert [event for _sources, event in bold] == ["claim", "no port", "stopped"]
    assert all("crashed" in sources for sources, _event in bold)
    assert "<td>starting</td><td>started</td><td>running</td>" in page
