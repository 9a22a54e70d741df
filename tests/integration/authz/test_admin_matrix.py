"""Every admin page, admin action and Operations button against the permission matrix.

Generated from one table, as test_api_matrix.py: anonymous (login redirect), staff without
the permission (403 — or, for the bot page's messages, no messages — nothing changed,
nothing queued, one bot.<verb>_denied row for start/stop/restart), with the permission on
another team's bot (404), with the permission (works).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from bots.access import CHAT, MANAGE_ALL, OPERATE
from bots.admin import OPERATE_ACTIONS, BotAdmin
from bots.botpage import OPERATE_REQUESTS, VIEW_AUDIT
from bots.models import Bot, ChatMessage, DesiredState
from deia.flags import starts_frozen
from ops.admin import REMEDIES, REMEDY_NEEDS
from ops.diagnose import CACHE_KEY
from ops.maintenance import JOBS
from tests.integration.authz.matrix import assert_untouched, audit_rows, world

pytestmark = pytest.mark.django_db
VIEW_BOT, CHANGE_BOT, ADD_BOT, DELETE_BOT = "bots.view_bot", "bots.change_bot", "bots.add_bot", "bots.delete_bot"
VIEW_OPS, OPERATE_OPS = "ops.view_operations", "ops.operate"
CHANGELIST = "/admin/bots/bot/"


@pytest.fixture(autouse=True)
def quick_diagnose(settings):
    """The Operations page runs diagnose: short timeouts, and no copy left by another test."""
    from django.core.cache import cache

    settings.DIAGNOSE_TIMEOUT = 1
    cache.delete(CACHE_KEY)
    yield
    cache.delete(CACHE_KEY)


def messages_of(response) -> list[str]:
    return [m.message for m in get_messages(response.wsgi_request)]


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    url: Callable[[Bot], str]
    needs: tuple[str, ...]  # the permission under test
    works: Callable  # works(response, bot, user): asserts the allowed outcome
    base: tuple[str, ...] = ()  # held by every logged-in user of the case
    data: Callable[[Bot], dict] = field(default=lambda bot: {})
    bot_scoped: bool = True
    audited_verb: str | None = None  # refusals write bot.<verb>_denied
    refused: Callable | None = None  # refused(response, bot); default: a 403

    def __str__(self) -> str:
        return self.name

    def call(self, client, bot: Bot):
        return getattr(client, self.method)(self.url(bot), self.data(bot))


def _change(bot: Bot) -> str:
    return reverse("admin:bots_bot_change", args=[bot.pk])


def _live(bot: Bot) -> str:
    return reverse("admin:bots_bot_live", args=[bot.pk])


def _message(bot: Bot) -> str:
    return reverse("admin:bots_chatmessage_change", args=[ChatMessage.objects.get(bot=bot).pk])


def _listed(response, bot, user) -> None:
    assert response.status_code == 200
    assert [b.pk for b in response.context["cl"].result_list] == [bot.pk]  # not red-bot, not lone-bot


def _page_of(bot_text: Callable[[Bot], str]):
    def check(response, bot, user) -> None:
        assert response.status_code == 200
        assert bot_text(bot) in response.content.decode()

    return check


def _edited(response, bot, user) -> None:
    assert response.status_code == 302
    bot.refresh_from_db()
    assert bot.model_name == "edited-model"
    assert audit_rows() == [("bot.update", user.username, f"bots.bot:{bot.pk} {bot.name}")]


def _operated(verb: str):
    def check(response, bot, user) -> None:
        assert response.status_code == 302
        bot.refresh_from_db()
        assert bot.desired_state == (DesiredState.STOPPED if verb == "stop" else DesiredState.RUNNING)
        assert f"{bot.name}: {verb} requested" in messages_of(response)
        assert audit_rows() == [(f"bot.{verb}", user.username, bot.slug)]

    return check


def _no_messages_shown(response, bot) -> None:
    text = response.content.decode()
    assert response.status_code == 200 and bot.name in text
    assert "a secret of" not in text and "Recent messages" not in text


def _messages_listed(response, bot, user) -> None:
    assert response.status_code == 200
    assert [m.content for m in response.context["cl"].result_list] == [f"a secret of {bot.slug}"]


def _job_queued(job: str):
    def check(response, bot, user) -> None:
        assert response.status_code == 302
        assert audit_rows() == [("maintenance.enqueue", user.username, job)]

    return check


def _confirmation(response, bot, user) -> None:
    assert response.status_code == 200
    assert 'name="confirm"' in response.content.decode()
    assert audit_rows() == []


def _said(text: str):
    def check(response, bot, user) -> None:
        assert response.status_code == 302
        assert any(text in message for message in messages_of(response))

    return check


def _frozen(response, bot, user) -> None:
    assert response.status_code == 302 and starts_frozen()
    assert audit_rows() == [("ops.freeze_starts", user.username, "freeze_starts")]


def _bot_action(action: str, verb: str) -> Case:
    return Case(
        f"action {action}",
        "post",
        lambda bot: CHANGELIST,
        (OPERATE,),
        _operated(verb),
        base=(VIEW_BOT, CHANGE_BOT),
        data=lambda bot: {"action": action, "_selected_action": [bot.pk]},
        audited_verb=verb,
    )


def _page_button(verb: str) -> Case:
    return Case(
        f"bot page button {verb}",
        "post",
        lambda bot: reverse("admin:bots_bot_operate", args=[bot.pk, verb]),
        (OPERATE,),
        _operated(verb),
        base=(VIEW_BOT,),
        data=lambda bot: {"confirm": "yes"},
        audited_verb=verb,
    )


def _live_json(response, bot, user) -> None:
    assert response.status_code == 200
    assert response.json()["id"] == bot.pk and response.json()["status"] == bot.status


def _no_audit_trail_shown(response, bot) -> None:
    text = response.content.decode()
    assert response.status_code == 200 and bot.name in text
    assert 'id="bot-audit"' not in text and 'id="bot-errors"' not in text


# Each Operations button: its form data and what it does when allowed.
BUTTONS: dict[str, tuple[dict, Callable]] = {
    "terminate_idle_connections": ({"older_than_minutes": "1000"}, _confirmation),
    "cancel_query": ({"pid": "999999"}, _said("no session with pid 999999")),
    "clear_cache": ({}, _confirmation),
    "stop_least_used": ({"keep": "10"}, _confirmation),
    "freeze": ({}, _frozen),
    "unfreeze": ({}, _said("Bot starts were not frozen.")),
}


def _button(remedy: str) -> Case:
    data, works = BUTTONS[remedy]
    url = reverse("admin:ops_operations_remedy", args=[remedy])
    needs = (OPERATE_OPS, *REMEDY_NEEDS.get(remedy, ()))
    return Case(f"operations {remedy}", "post", lambda bot: url, needs, works, (VIEW_OPS,), lambda bot: data, False)


def _run_job(job: str) -> Case:
    url = reverse("admin:ops_operations_run", args=[job])
    return Case(
        f"operations run {job}",
        "post",
        lambda bot: url,
        (OPERATE_OPS,),
        _job_queued(job),
        (VIEW_OPS,),
        bot_scoped=False,
    )


CASES = [
    Case("bot list", "get", lambda bot: CHANGELIST, (VIEW_BOT,), _listed, bot_scoped=False),
    Case("bot page", "get", _change, (VIEW_BOT,), _page_of(lambda bot: bot.name)),
    Case(
        "bot edit",
        "post",
        _change,
        (CHANGE_BOT,),
        _edited,
        base=(VIEW_BOT,),
        data=lambda bot: {
            "name": bot.name,
            "slug": bot.slug,
            "team": bot.team_id,
            "backend": bot.backend,
            "model_name": "edited-model",
            "system_prompt": "",
        },
    ),
    Case(
        "bot add page",
        "get",
        lambda bot: "/admin/bots/bot/add/",
        (ADD_BOT,),
        _page_of(lambda bot: "Add bot"),
        bot_scoped=False,
    ),
    Case(
        "bot delete page",
        "get",
        lambda bot: reverse("admin:bots_bot_delete", args=[bot.pk]),
        (DELETE_BOT,),
        _page_of(lambda bot: "Are you sure"),
        base=(VIEW_BOT,),
    ),
    Case(
        "bot history",
        "get",
        lambda bot: reverse("admin:bots_bot_history", args=[bot.pk]),
        (VIEW_BOT,),
        _page_of(lambda bot: bot.name),
    ),
    *(_bot_action(action, verb) for action, verb in OPERATE_ACTIONS.items()),
    Case(
        "action delete_selected",
        "post",
        lambda bot: CHANGELIST,
        (DELETE_BOT,),
        _page_of(lambda bot: "Are you sure"),
        base=(VIEW_BOT, CHANGE_BOT),
        data=lambda bot: {"action": "delete_selected", "_selected_action": [bot.pk]},
    ),
    Case(
        "bot page messages",
        "get",
        _change,
        (CHAT,),
        _page_of(lambda bot: f"a secret of {bot.slug}"),
        base=(VIEW_BOT,),
        refused=_no_messages_shown,
    ),
    Case("bot page live status", "get", _live, (VIEW_BOT,), _live_json),
    *(_page_button(verb) for verb in OPERATE_REQUESTS),
    Case(
        "bot page audit trail",
        "get",
        _change,
        (VIEW_AUDIT,),
        _page_of(lambda bot: 'id="bot-audit"'),
        base=(VIEW_BOT,),
        refused=_no_audit_trail_shown,
    ),
    Case(
        "chat message list", "get", lambda bot: "/admin/bots/chatmessage/", (CHAT,), _messages_listed, bot_scoped=False
    ),
    Case("chat message page", "get", _message, (CHAT,), _page_of(lambda bot: f"a secret of {bot.slug}")),
    Case(
        "operations page",
        "get",
        lambda bot: reverse("admin:ops_operations"),
        (VIEW_OPS,),
        _page_of(lambda bot: "Diagnose:"),
        bot_scoped=False,
    ),
    *(_button(remedy) for remedy in REMEDIES),
    *(_run_job(job) for job in JOBS),
]
SCOPED = [case for case in CASES if case.bot_scoped]


def test_the_table_covers_every_bot_action_and_every_operations_button():
    actions = {case.name.removeprefix("action ") for case in CASES if case.name.startswith("action ")}
    assert actions == {*BotAdmin.actions, "delete_selected"}
    buttons = {case.name.removeprefix("bot page button ") for case in CASES if case.name.startswith("bot page button ")}
    assert buttons == set(OPERATE_REQUESTS)
    assert set(BUTTONS) == set(REMEDIES)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_anonymous_is_sent_to_the_login_page_and_nothing_happens(
    case, admin_as, own_bot, django_capture_on_commit_callbacks
):
    before = world()
    with django_capture_on_commit_callbacks() as callbacks:
        response = case.call(admin_as(None), own_bot)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")
    assert_untouched(before, callbacks)
    assert audit_rows() == [] and not starts_frozen()


@pytest.mark.parametrize("case", CASES, ids=str)
def test_staff_without_the_permission_is_refused_and_nothing_happens(
    case, admin_as, make_user, own_bot, django_capture_on_commit_callbacks
):
    user = make_user(*case.base)
    before = world()
    with django_capture_on_commit_callbacks() as callbacks:
        response = case.call(admin_as(user), own_bot)
    if case.refused:
        case.refused(response, own_bot)
    else:
        assert response.status_code == 403
    assert_untouched(before, callbacks)
    assert not starts_frozen()
    if case.audited_verb:
        assert audit_rows() == [(f"bot.{case.audited_verb}_denied", user.username, own_bot.slug)]
    else:
        assert audit_rows() == []


@pytest.mark.parametrize("case", SCOPED, ids=str)
def test_with_the_permission_another_teams_bot_is_404(
    case, admin_as, make_user, other_bot, django_capture_on_commit_callbacks
):
    user = make_user(*case.base, *case.needs)
    before = world()
    with django_capture_on_commit_callbacks() as callbacks:
        response = case.call(admin_as(user), other_bot)
    assert response.status_code == 404
    assert "red-bot" not in response.content.decode() and "Red-Bot" not in response.content.decode()
    assert_untouched(before, callbacks)
    assert audit_rows() == []


@pytest.mark.parametrize("case", CASES, ids=str)
def test_with_the_permission_it_works(
    case, admin_as, make_user, own_bot, other_bot, teamless_bot, django_capture_on_commit_callbacks
):
    user = make_user(*case.base, *case.needs)
    if case.name == "action stop_bots":
        Bot.objects.filter(pk=own_bot.pk).update(desired_state=DesiredState.RUNNING)
    with django_capture_on_commit_callbacks() as callbacks:
        response = case.call(admin_as(user), own_bot)
    case.works(response, own_bot, user)
    if case.audited_verb or case.name.startswith("operations run "):
        assert len(callbacks) == 1  # the reconcile, restart or job is enqueued after the commit


def test_the_operate_actions_are_offered_only_with_the_permission(admin_as, make_user, own_bot):
    def offered(user) -> set[str]:
        form = admin_as(user).get(CHANGELIST).context["action_form"]  # None: no action at all
        return {name for name, _ in form.fields["action"].choices if name} if form else set()

    assert offered(make_user(VIEW_BOT, CHANGE_BOT)).isdisjoint(OPERATE_ACTIONS)
    assert offered(make_user(VIEW_BOT, OPERATE)) >= set(OPERATE_ACTIONS)


def test_the_operations_buttons_are_shown_only_with_the_permission(admin_as, make_user):
    def page(*perms) -> str:
        return admin_as(make_user(*perms)).get(reverse("admin:ops_operations")).content.decode()

    looker = page(VIEW_OPS)
    assert "Run backup now" not in looker and "Freeze new bot starts" not in looker
    operator = page(VIEW_OPS, OPERATE_OPS)
    assert "Run backup now" in operator and "Freeze new bot starts" in operator


def test_stopping_least_used_bots_of_every_team_needs_the_fleet_wide_bot_permissions_too(
    admin_as, make_user, django_capture_on_commit_callbacks
):
    url = reverse("admin:ops_operations_remedy", args=["stop_least_used"])
    for perms in [(), (MANAGE_ALL,), (OPERATE,)]:
        user = make_user(VIEW_OPS, OPERATE_OPS, *perms)
        page = admin_as(user).get(reverse("admin:ops_operations")).content.decode()
        assert "Stop least-used bots" not in page and "Freeze new bot starts" in page
        with django_capture_on_commit_callbacks() as callbacks:
            assert admin_as(user).post(url, {"keep": "0", "confirm": "yes"}).status_code == 403
        assert callbacks == [] and audit_rows() == []
