"""The JSON API's contract: auth, errors, validation, query budget, schema (no worker needed)."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from bots.models import Bot, ChatMessage, DesiredState, Role, Status
from deia.models import AuditLog, RuntimeFlag

pytestmark = pytest.mark.django_db


@pytest.fixture
def bot():
    return Bot.objects.create(name="Support", slug="support")


def test_without_credentials_every_endpoint_answers_401_json(bot):
    client = APIClient()
    for method, path in [
        ("get", "/api/bots"),
        ("get", f"/api/bots/{bot.pk}"),
        ("post", f"/api/bots/{bot.pk}/start"),
        ("post", f"/api/bot/{bot.pk}/stop"),
        ("get", f"/api/bots/{bot.pk}/messages"),
    ]:
        response = getattr(client, method)(path)
        assert response.status_code == 401, path
        assert response.json()["error"] == "not_authenticated"
        assert response["WWW-Authenticate"].startswith("Token")
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert bad.get("/api/bots").json() == {"error": "authentication_failed", "detail": "Invalid token."}
    assert Bot.objects.get(pk=bot.pk).desired_state == DesiredState.STOPPED
    assert not AuditLog.objects.exists()


def test_an_unknown_bot_is_a_404_json_error(api):
    for path in ("/api/bots/999999", "/api/bots/abc", "/api/bots/999999/messages"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"error": "not_found", "detail": "Not found."}
    assert api.post("/api/bots/999999/start").status_code == 404
    assert api.post("/api/bot/999999/stop").status_code == 404
    assert not AuditLog.objects.exists()


def test_the_bot_list_is_one_query_however_many_bots(api, django_assert_max_num_queries):
    for i in range(30):
        Bot.objects.create(name=f"Bot {i}", slug=f"bot-{i}")
    # A token's first use in a minute also records its last use (one UPDATE a minute at
    # most, tests/integration/security); the budget is every other request's.
    api.get("/api/bots")
    with django_assert_max_num_queries(3):  # token + user, bots
        response = api.get("/api/bots")
    assert response.status_code == 200
    assert len(response.json()) == 30
    assert {"id", "status", "desired_state", "address", "uptime_seconds", "last_error"} <= set(response.json()[0])


def test_a_bots_placement_label_is_in_the_api(api):
    Bot.objects.create(name="GPU bot", slug="gpu-bot", required_label="gpu")
    Bot.objects.create(name="Any host", slug="any-host")
    listed = {b["slug"]: b["required_label"] for b in api.get("/api/bots").json()}
    assert listed == {"gpu-bot": "gpu", "any-host": ""}
    one = Bot.objects.get(slug="gpu-bot")
    assert api.get(f"/api/bots/{one.pk}").json()["required_label"] == "gpu"


def test_messages_are_paginated_newest_first_within_a_query_budget(api, bot, django_assert_max_num_queries):
    conversation = uuid.uuid4()
    for i in range(60):
        ChatMessage.objects.create(bot=bot, conversation=conversation, role=Role.USER, content=f"m{i}")
    # A token's first use in a minute also records its last use (one UPDATE a minute at
    # most, tests/integration/security); the budget is every other request's.
    api.get("/api/bots")
    with django_assert_max_num_queries(5):
        page = api.get(f"/api/bots/{bot.pk}/messages").json()
    assert page["count"] == 60
    assert [m["content"] for m in page["results"][:3]] == ["m59", "m58", "m57"]
    assert len(page["results"]) == 50 and page["next"]
    assert [m["content"] for m in api.get(page["next"]).json()["results"]][-1] == "m0"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "message"),
        ({"message": ""}, "message"),
        ({"message": "   "}, "message"),
        ({"message": "x" * (32 * 1024 + 1)}, "message"),
        ({"message": "é" * (16 * 1024 + 1)}, "message"),  # 32 KiB is bytes, not characters
        ({"message": "hi", "conversation": "not-a-uuid"}, "conversation"),
        ({"message": "hi", "conversation": 7}, "conversation"),
        ({"message": 42.5}, "message"),
    ],
)
def test_a_bad_message_is_a_400_with_field_errors_and_nothing_is_stored(api, bot, body, field):
    Bot.objects.filter(pk=bot.pk).update(status=Status.RUNNING, port=18399, host="127.0.0.1")
    response = api.post(f"/api/bots/{bot.pk}/messages", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert field in response.json()["detail"]
    assert not ChatMessage.objects.exists()


def test_a_body_that_is_not_json_is_a_400(api, bot):
    response = api.post(f"/api/bots/{bot.pk}/messages", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "parse_error"


def test_a_message_to_a_bot_that_is_not_running_is_a_409(api, bot):
    response = api.post(f"/api/bots/{bot.pk}/messages", {"message": "hello"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"] == "not_running"


def test_a_bot_that_does_not_answer_in_time_is_a_504(api, bot, hanging_server, settings):
    settings.BOT_CHAT_TIMEOUT = 0.3
    Bot.objects.filter(pk=bot.pk).update(status=Status.RUNNING, port=hanging_server.port, host="127.0.0.1")
    response = api.post(f"/api/bots/{bot.pk}/messages", {"message": "hello"}, format="json")
    assert response.status_code == 504
    assert response.json()["error"] == "timeout"


def test_an_unreachable_bot_is_a_502(api, bot):
    from tests.support.procs import free_port

    Bot.objects.filter(pk=bot.pk).update(status=Status.RUNNING, port=free_port(), host="127.0.0.1")
    response = api.post(f"/api/bots/{bot.pk}/messages", {"message": "hello"}, format="json")
    assert response.status_code == 502
    assert response.json()["error"] == "bad_gateway"


def test_start_stop_restart_set_the_desired_state_and_audit_the_token_owner(api, bot):
    response = api.post(f"/api/bots/{bot.pk}/start", REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 202
    assert response.json()["desired_state"] == "running"
    assert api.post(f"/api/bots/{bot.pk}/restart").status_code == 202
    assert api.post(f"/api/bots/{bot.pk}/stop").status_code == 202
    rows = list(AuditLog.objects.order_by("id").values_list("action", "actor"))
    assert rows == [("bot.start", "operator"), ("bot.restart", "operator"), ("bot.stop", "operator")]
    assert AuditLog.objects.get(action="bot.start").ip == "10.1.2.3"


def test_a_start_over_max_bots_is_a_409_and_is_audited(api, bot, settings):
    settings.MAX_BOTS = 1
    Bot.objects.create(name="Other", slug="other", desired_state=DesiredState.RUNNING, status=Status.RUNNING)
    response = api.post(f"/api/bots/{bot.pk}/start")
    assert response.status_code == 409
    assert response.json()["error"] == "start_refused"
    assert "MAX_BOTS" in response.json()["detail"]
    assert AuditLog.objects.get().action == "bot.start_refused"
    assert Bot.objects.get(pk=bot.pk).desired_state == DesiredState.STOPPED


def test_max_bots_zero_and_the_freeze_refuse_api_starts(api, bot, settings):
    settings.MAX_BOTS = 0
    assert api.post(f"/api/bots/{bot.pk}/start").json()["detail"].endswith("(MAX_BOTS=0); no bot was started.")
    settings.MAX_BOTS = 10
    RuntimeFlag.objects.create(name=RuntimeFlag.FREEZE_STARTS, enabled=True)
    response = api.post(f"/api/bots/{bot.pk}/restart")
    assert response.status_code == 409 and "frozen" in response.json()["detail"]
    assert AuditLog.objects.filter(action="bot.start_refused").count() == 2


def test_get_on_an_action_is_a_405_json_error(api, bot):
    response = api.get(f"/api/bots/{bot.pk}/start")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_the_openapi_schema_describes_the_bot_endpoints(client):
    response = client.get("/api/schema")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path in ("/api/bots", "/api/bots/{id}", "/api/bots/{id}/start", "/api/bots/{id}/messages"):
        assert path in paths, sorted(paths)
    assert "409" in paths["/api/bots/{id}/start"]["post"]["responses"]
    assert "504" in paths["/api/bots/{id}/messages"]["post"]["responses"]
    assert "tokenAuth" in schema["components"]["securitySchemes"]
