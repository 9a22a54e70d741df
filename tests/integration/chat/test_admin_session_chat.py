"""The bot page's test chat is the API's chat endpoint with the admin's session: a signed-in
operator's browser posts with its CSRF token and reads the same event stream a token client
reads; without the token the session is refused and nothing is sent to the bot."""

from __future__ import annotations

import re
from contextlib import closing

import httpx

from bots.access import CHAT
from bots.models import ChatMessage, Role
from tests.integration.chat.test_data_plane import sse_events
from tests.support.perms import grant

PASSWORD = "correct-horse-battery"


def signed_in(base_url: str, username: str) -> httpx.Client:
    """An HTTP client that signed in through the admin's login form, as a browser does (close it)."""
    client = httpx.Client(base_url=base_url, timeout=30)
    client.get("/admin/login/")
    form = {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": client.cookies["csrftoken"]}
    assert client.post("/admin/login/?next=/admin/", data=form).status_code == 302
    return client


def page_token(page: httpx.Response) -> str:
    assert page.status_code == 200
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)


def test_the_test_chat_streams_through_the_api_with_the_session_and_its_csrf_token(
    running_bot, web, fake_ollama, django_user_model
):
    api = web()
    bot, _ = running_bot()
    fake_ollama.chunk_delay = 0.05
    user = django_user_model.objects.create_user("operator", password=PASSWORD, is_staff=True)
    grant(user, "bots.view_bot", CHAT, "bots.manage_all_bots")
    url = f"/api/bots/{bot.pk}/messages"
    with closing(signed_in(api.url, "operator")) as client:
        page = client.get(f"/admin/bots/bot/{bot.pk}/change/")
        assert f'data-chat-url="{url}"' in page.text
        token = page_token(page)

        refused = client.post(url, json={"message": "no token", "stream": True})
        assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
        assert fake_ollama.chats() == [] and ChatMessage.objects.count() == 0

        headers = {"X-CSRFToken": token, "Accept": "text/event-stream"}
        with client.stream("POST", url, json={"message": "hello from the page"}, headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = sse_events(response.iter_lines())
    names = [name for name, _ in events]
    assert names[-1] == "done" and names.count("chunk") == len(["fake", "reply", "to:", "hello", "from", "the", "page"])
    assert "".join(data["content"] for name, data in events if name == "chunk") == events[-1][1]["reply"]
    stored = list(ChatMessage.objects.filter(bot=bot).order_by("id").values_list("role", "content"))
    assert stored == [(Role.USER, "hello from the page"), (Role.ASSISTANT, "fake reply to: hello from the page")]
