"""Start -> chat -> stop through the API, with a real worker, runner and fake Ollama."""

from __future__ import annotations

import pytest

from bots.lifecycle.process import can_bind, pid_alive
from bots.models import Bot, ChatMessage, Role, Status
from deia.models import AuditLog, MetricValue
from tests.support.procs import wait_for


def bot_status(bot: Bot) -> str:
    bot.refresh_from_db()
    return bot.status


def test_a_bot_started_chatted_with_and_stopped_through_the_api_leaves_no_trace(api, bot_worker):
    bot_worker("host-a")
    bot = Bot.objects.create(name="Support", slug="support", model_name="llama3.2")

    response = api.post(f"/api/bots/{bot.pk}/start")
    assert response.status_code == 202, response.content
    assert response.json()["desired_state"] == "running"
    wait_for(lambda: bot_status(bot) == Status.RUNNING, timeout=30, what="bot running")
    assert bot.host == "host-a" and bot.pid and bot.port and bot.startup_seconds > 0
    pid, port = bot.pid, bot.port
    assert pid_alive(pid) and not can_bind(port)
    assert api.get(f"/api/bots/{bot.pk}").json()["status"] == "running"

    answer = api.post(f"/api/bots/{bot.pk}/messages", {"message": "where is my parcel"}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["reply"] == "fake reply to: where is my parcel"
    assert answer.json()["request_id"] == answer["X-Request-ID"]  # the id followed the chat to the runner
    stored = list(ChatMessage.objects.filter(bot=bot).order_by("created_at", "id").values_list("role", "content"))
    assert stored[-2:] == [(Role.USER, "where is my parcel"), (Role.ASSISTANT, "fake reply to: where is my parcel")]
    history = api.get(f"/api/bots/{bot.pk}/messages").json()
    assert [m["role"] for m in history["results"]][:2] == ["assistant", "user"]  # newest first

    assert api.post(f"/api/bots/{bot.pk}/stop").status_code == 202
    wait_for(lambda: bot_status(bot) == Status.STOPPED, timeout=30, what="bot stopped")
    wait_for(lambda: not pid_alive(pid), timeout=5, what="runner gone")
    assert can_bind(port)
    assert (bot.pid, bot.port, bot.host) == (None, None, "")
    actions = list(AuditLog.objects.filter(target="support").order_by("id").values_list("action", "actor"))
    assert actions == [
        ("bot.start", "operator"),
        ("bot.started", "reconcile"),
        ("bot.stop", "operator"),
        ("bot.stopped", "reconcile"),
    ]
    assert MetricValue.objects.get(name="deia_bot_starts_total", labels="result=ok").value == 1
    assert MetricValue.objects.get(name="deia_bot_startup_seconds_count").value == 1


@pytest.mark.parametrize("path", ["/api/bots/{}/stop", "/api/bot/{}/stop"])
def test_the_guides_stop_path_also_stops_a_bot(api, bot_worker, path):
    bot_worker("host-a")
    bot = Bot.objects.create(name="Guide", slug="guide")
    api.post(f"/api/bots/{bot.pk}/start")
    wait_for(lambda: bot_status(bot) == Status.RUNNING, timeout=30, what="bot running")
    pid = bot.pid
    assert api.post(path.format(bot.pk)).status_code == 202
    wait_for(lambda: bot_status(bot) == Status.STOPPED, timeout=30, what="bot stopped")
    assert not pid_alive(pid)


def test_the_request_id_of_an_operator_start_follows_the_task_into_the_worker(api, bot_worker):
    import json

    worker = bot_worker("host-a")
    bot = Bot.objects.create(name="Traced", slug="traced")
    response = api.post(f"/api/bots/{bot.pk}/start", HTTP_X_REQUEST_ID="trace-start-42")
    assert response["X-Request-ID"] == "trace-start-42"
    wait_for(lambda: bot_status(bot) == Status.RUNNING, timeout=30, what="bot running")

    def started_line():
        for line in worker.proc.output().splitlines():
            if line.startswith("{") and '"bot.started"' in line and '"deia.lifecycle"' in line:
                return json.loads(line)
        return None

    line = wait_for(started_line, timeout=10, what="the worker's bot.started log line")
    assert line["request_id"] == "trace-start-42"
    assert line["bot"] == "traced"
