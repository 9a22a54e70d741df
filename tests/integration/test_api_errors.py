"""Every answer under /api/ is JSON, 404 and 405 included, and the schema says what the server does."""

from __future__ import annotations

import re

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from bots.models import Bot, ChatMessage, Role
from bots.serializers import SendMessageSerializer

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(django_user_model) -> APIClient:
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_superuser("root", password="x"))
    return client


@pytest.mark.parametrize(
    "path", ["/api/bots/1.5", "/api/bots/a.b", "/api/bots/", "/api/nope", "/api/schema/x", "/api/bots/1/nope"]
)
def test_a_path_no_route_matches_is_a_json_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "not_found", "detail": "Not found."}


def test_a_method_the_schema_view_does_not_take_is_a_json_405_with_allow(client):
    response = client.post("/api/schema")
    assert response.status_code == 405
    assert response.json() == {"error": "method_not_allowed", "detail": 'Method "POST" not allowed.'}
    assert response["Content-Type"] == "application/json"
    assert "GET" in response["Allow"]


def test_a_method_a_bot_does_not_take_is_a_json_405(api):
    bot = Bot.objects.create(name="Support", slug="support")
    response = api.delete(f"/api/bots/{bot.pk}")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_paths_outside_the_api_keep_their_html_404(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_the_message_list_answers_the_page_its_schema_describes(api):
    bot = Bot.objects.create(name="Support", slug="support")
    ChatMessage.objects.bulk_create(ChatMessage(bot=bot, role=Role.USER, content=f"m{i}") for i in range(60))
    body = api.get(f"/api/bots/{bot.pk}/messages").json()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/bots/{id}/messages"]["get"]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    page = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(body) == set(page["properties"]) == set(page["required"])
    assert body["count"] == 60 and len(body["results"]) == 50 and body["next"].endswith("page=2")
    assert "page" in {p["name"] for p in operation["parameters"]}
    beyond = api.get(f"/api/bots/{bot.pk}/messages?page=9")
    assert beyond.status_code == 404 and "404" in operation["responses"]
    assert beyond.json() == {"error": "not_found", "detail": "Invalid page."}


@pytest.mark.parametrize("message", ["", " ", "\n\t "])
def test_an_empty_message_is_refused_by_the_serializer_and_by_the_schema(message):
    assert not SendMessageSerializer(data={"message": message}).is_valid()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    field = schema["components"]["schemas"]["SendMessage"]["properties"]["message"]
    assert len(message) < field["minLength"] or not re.search(field["pattern"], message)
    assert SendMessageSerializer(data={"message": " hi "}).is_valid()
