"""Every API endpoint against the permission matrix, generated from one table (NetBox's style).

For each endpoint: anonymous (401), logged in without the permission (403, nothing changed,
nothing queued, one bot.<verb>_denied row for start/stop/restart), with the permission on
another team's bot (404), with the permission on one's own team's bot (works). The README's
"Who may do what" table points here. (/api/schema is public; /api/prometheus/targets is
behind the metrics ACL, tests/integration/observability.)
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bots.access import ACTION_PERMISSIONS, CHAT, OPERATE
from bots.api import BotViewSet
from bots.models import Bot, DesiredState
from tests.integration.authz.matrix import assert_untouched, audit_rows, world

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # "{pk}": the bot's id
    needs: str | None  # the permission beyond a login
    allowed: int  # the status when allowed, on one's own team's bot
    body: dict | None = None

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"

    @property
    def bot_scoped(self) -> bool:
        return "{pk}" in self.path

    @property
    def verb(self) -> str | None:
        """start/stop/restart for operate endpoints (their refusals are audited)."""
        return self.path.rsplit("/", 1)[-1] if self.needs == OPERATE else None

    def call(self, client, bot: Bot | None):
        path = self.path.format(pk=bot.pk if bot else 0)
        return getattr(client, self.method)(path, self.body, format="json")


ENDPOINTS = [
    Endpoint("get", "/api/bots", None, 200),
    Endpoint("get", "/api/bots/{pk}", None, 200),
    Endpoint("post", "/api/bots/{pk}/start", OPERATE, 202),
    Endpoint("post", "/api/bots/{pk}/stop", OPERATE, 202),
    Endpoint("post", "/api/bot/{pk}/stop", OPERATE, 202),  # the operations guide's spelling
    Endpoint("post", "/api/bots/{pk}/restart", OPERATE, 202),
    Endpoint("get", "/api/bots/{pk}/messages", CHAT, 200),
    # Authorised, the message reaches the bot's state check: a stopped bot is a 409.
    Endpoint("post", "/api/bots/{pk}/messages", CHAT, 409, {"message": "hello"}),
]
GUARDED = [e for e in ENDPOINTS if e.needs]
SCOPED = [e for e in ENDPOINTS if e.bot_scoped]


def test_the_table_covers_every_action_of_the_viewset_and_the_chat_view():
    from bots.chat_api import BotMessagesView

    per_bot = {*(a.url_name for a in BotViewSet.get_extra_actions()), BotMessagesView.action}
    assert {"list", "retrieve", *per_bot} <= set(ACTION_PERMISSIONS)
    tabled = {e.path.rsplit("/", 1)[-1] for e in ENDPOINTS if e.path.startswith("/api/bots/{pk}/")}
    assert tabled == per_bot


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_anonymous_is_401_and_nothing_happens(endpoint, api_as, own_bot, django_capture_on_commit_callbacks):
    before = world()
    with django_capture_on_commit_callbacks() as callbacks:
        response = endpoint.call(api_as(None), own_bot)
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert_untouched(before, callbacks)
    assert audit_rows() == []


@pytest.mark.parametrize("endpoint", GUARDED, ids=str)
def test_without_the_permission_it_is_403_and_nothing_happens(
    endpoint, api_as, make_user, own_bot, django_capture_on_commit_callbacks
):
    others = {OPERATE, CHAT} - {endpoint.needs}
    user = make_user(*others)  # every other bot permission, in the bot's team
    before = world()
    with django_capture_on_commit_callbacks() as callbacks:
        response = endpoint.call(api_as(user), own_bot)
    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"
    assert endpoint.needs in response.json()["detail"]
    assert_untouched(before, callbacks)
    if endpoint.verb:
        assert audit_rows() == [(f"bot.{endpoint.verb}_denied", user.username, own_bot.slug)]
    else:
        assert audit_rows() == []


@pytest.mark.parametrize("endpoint", [e for e in GUARDED if e.verb], ids=str)
def test_a_refused_attempt_on_an_invisible_bot_is_audited_by_its_id_only(
    endpoint, api_as, make_user, other_bot, django_capture_on_commit_callbacks
):
    user = make_user()
    with django_capture_on_commit_callbacks() as callbacks:
        response = endpoint.call(api_as(user), other_bot)
    assert response.status_code == 403  # the permission is checked before the bot is looked up
    assert callbacks == []
    assert audit_rows() == [(f"bot.{endpoint.verb}_denied", user.username, f"bot #{other_bot.pk}")]


@pytest.mark.parametrize("endpoint", SCOPED, ids=str)
def test_with_the_permission_another_teams_bot_is_404(
    endpoint, api_as, make_user, other_bot, django_capture_on_commit_callbacks
):
    user = make_user(OPERATE, CHAT)
    before = world()
    with django_capture_on_commit_callbacks() as callbacks:
        response = endpoint.call(api_as(user), other_bot)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "Not found."}
    assert_untouched(before, callbacks)
    assert audit_rows() == []


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_with_the_permission_it_works_on_ones_own_teams_bot(
    endpoint, api_as, make_user, own_bot, other_bot, teamless_bot, django_capture_on_commit_callbacks
):
    user = make_user(*([endpoint.needs] if endpoint.needs else []))
    if endpoint.path.endswith("/stop"):
        Bot.objects.filter(pk=own_bot.pk).update(desired_state=DesiredState.RUNNING)
    with django_capture_on_commit_callbacks() as callbacks:
        response = endpoint.call(api_as(user), own_bot)
    assert response.status_code == endpoint.allowed, response.content
    body = response.json()
    own_bot.refresh_from_db()
    if endpoint.path == "/api/bots":
        assert [b["slug"] for b in body] == [own_bot.slug]  # other teams' and team-less bots are absent
    elif endpoint.path == "/api/bots/{pk}":
        assert (body["id"], body["team"]) == (own_bot.pk, "blue")
    elif endpoint.verb:
        expected = DesiredState.STOPPED if endpoint.verb == "stop" else DesiredState.RUNNING
        assert own_bot.desired_state == expected and body["desired_state"] == expected
        assert len(callbacks) == 1  # the reconcile (or restart) is enqueued after the commit
        assert audit_rows() == [(f"bot.{endpoint.verb}", user.username, own_bot.slug)]
    elif endpoint.method == "get" and endpoint.needs == CHAT:
        assert [m["content"] for m in body["results"]] == ["a secret of blue-bot"]
    else:
        assert body["error"] == "not_running"
