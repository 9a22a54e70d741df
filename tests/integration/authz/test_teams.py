"""Teams: who sees which bots (bots.access), the team in the API and the admin, and the rule's edges."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.urls import reverse

from bots.access import CHAT, MANAGE_ALL, OPERATE, may, visible_bots
from bots.models import Bot, DesiredState
from tests.support.perms import grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(own_bot, other_bot, teamless_bot) -> dict[str, Bot]:
    return {"blue": own_bot, "red": other_bot, "none": teamless_bot}


def slugs(queryset) -> set[str]:
    return set(queryset.values_list("slug", flat=True))


def test_a_team_member_sees_only_their_teams_bots_and_never_team_less_ones(make_user, fleet):
    assert slugs(visible_bots(make_user())) == {"blue-bot"}
    assert slugs(visible_bots(make_user(team="red"))) == {"red-bot"}
    assert slugs(visible_bots(make_user(team=None))) == set()


def test_a_member_of_two_teams_sees_both(make_user, teams, fleet):
    user = make_user()
    user.groups.add(teams["red"])
    assert slugs(visible_bots(user)) == {"blue-bot", "red-bot"}


def test_superusers_and_manage_all_holders_see_every_bot_team_less_included(make_user, django_user_model, fleet):
    everything = {"blue-bot", "red-bot", "lone-bot"}
    assert slugs(visible_bots(make_user(MANAGE_ALL, team=None))) == everything
    admin = django_user_model.objects.create_superuser("root", password="x")
    assert slugs(visible_bots(admin)) == everything


def test_inactive_and_anonymous_users_see_nothing_and_may_nothing(make_user, fleet):
    inactive = make_user(MANAGE_ALL, OPERATE, is_active=False)
    for user in (inactive, AnonymousUser(), None):
        assert slugs(visible_bots(user)) == set()
        assert not may(user, OPERATE)


def test_may_is_true_for_superusers_and_holders_only(make_user, django_user_model):
    holder = make_user(OPERATE)
    assert may(holder, OPERATE) and not may(holder, CHAT)
    assert may(django_user_model.objects.create_superuser("root", password="x"), CHAT)


def test_visible_bots_narrows_a_given_queryset(make_user, fleet):
    running = Bot.objects.filter(desired_state=DesiredState.RUNNING)
    Bot.objects.filter(slug__in=["blue-bot", "red-bot"]).update(desired_state=DesiredState.RUNNING)
    assert slugs(visible_bots(make_user(), running)) == {"blue-bot"}


def test_the_api_shows_every_bot_to_a_manager_with_its_team_name_or_null(api_as, make_user, fleet):
    body = api_as(make_user(MANAGE_ALL, team=None)).get("/api/bots").json()
    assert {b["slug"]: b["team"] for b in body} == {"blue-bot": "blue", "red-bot": "red", "lone-bot": None}


def test_a_manager_may_operate_another_teams_bot(api_as, make_user, fleet):
    response = api_as(make_user(MANAGE_ALL, OPERATE, team=None)).post(f"/api/bots/{fleet['red'].pk}/start")
    assert response.status_code == 202
    fleet["red"].refresh_from_db()
    assert fleet["red"].desired_state == DesiredState.RUNNING


def test_the_admin_list_shows_a_manager_every_bot_and_a_member_their_teams(admin_as, make_user, fleet):
    def listed(user) -> set[str]:
        page = admin_as(user).get(reverse("admin:bots_bot_changelist"))
        return {bot.slug for bot in page.context["cl"].result_list}

    manager = make_user("bots.view_bot", MANAGE_ALL, team=None)
    assert listed(manager) == {"blue-bot", "red-bot", "lone-bot"}
    assert listed(make_user("bots.view_bot")) == {"blue-bot"}
    for bot in (fleet["red"], fleet["none"]):
        assert admin_as(manager).get(reverse("admin:bots_bot_change", args=[bot.pk])).status_code == 200


def test_the_bot_list_api_of_a_team_member_is_three_queries(api_as, make_user, teams, django_assert_max_num_queries):
    for i in range(20):
        Bot.objects.create(name=f"Bot {i}", slug=f"bot-{i}", team=teams["blue" if i % 2 else "red"])
    api = api_as(make_user())
    api.get("/api/bots")  # the token's last use is recorded once a minute: the budget is the rest
    with django_assert_max_num_queries(3):  # token + user, permissions (one query), visible bots with teams
        body = api.get("/api/bots").json()
    assert len(body) == 10 and {b["team"] for b in body} == {"blue"}


def test_a_users_own_and_teams_permissions_are_read_in_one_query(
    make_user, teams, django_user_model, django_assert_num_queries
):
    user = make_user(OPERATE)
    grant(teams["blue"], CHAT)
    fresh = django_user_model.objects.get(pk=user.pk)
    with django_assert_num_queries(1):
        assert fresh.has_perm(OPERATE) and fresh.has_perm(CHAT) and not fresh.has_perm(MANAGE_ALL)
    assert fresh.get_all_permissions() >= {OPERATE, CHAT}


def test_a_team_member_gives_a_bot_only_one_of_their_teams_and_must_give_one(admin_as, make_user, teams):
    member = make_user("bots.add_bot", "bots.view_bot")
    form = admin_as(member).get(reverse("admin:bots_bot_add")).context["adminform"].form
    assert list(form.fields["team"].queryset) == [teams["blue"]]
    assert form.fields["team"].required
    data = {"name": "Sneaky", "slug": "sneaky", "backend": "echo", "model_name": "m", "system_prompt": ""}
    refused = admin_as(member).post(reverse("admin:bots_bot_add"), {**data, "team": teams["red"].pk})
    assert refused.status_code == 200 and "team" in refused.context["adminform"].form.errors
    assert admin_as(member).post(reverse("admin:bots_bot_add"), {**data, "team": ""}).status_code == 200
    assert not Bot.objects.filter(slug="sneaky").exists()
    manager = make_user("bots.add_bot", "bots.view_bot", MANAGE_ALL, team=None)
    form = admin_as(manager).get(reverse("admin:bots_bot_add")).context["adminform"].form
    assert set(form.fields["team"].queryset) == set(teams.values()) and not form.fields["team"].required


def test_deleting_a_team_leaves_its_bots_team_less_and_out_of_its_members_sight(make_user, teams, fleet):
    member = make_user()
    teams["blue"].delete()
    fleet["blue"].refresh_from_db()
    assert fleet["blue"].team is None
    assert slugs(visible_bots(member)) == set()


def test_an_admin_action_on_a_mix_of_visible_and_invisible_bots_is_a_404_and_does_nothing(admin_as, make_user, fleet):
    user = make_user("bots.view_bot", OPERATE)
    response = admin_as(user).post(
        reverse("admin:bots_bot_changelist"),
        {"action": "start_bots", "_selected_action": [fleet["blue"].pk, fleet["red"].pk]},
    )
    assert response.status_code == 404
    assert set(Bot.objects.values_list("desired_state", flat=True)) == {DesiredState.STOPPED}


def test_a_refused_admin_action_on_several_bots_is_one_audit_row(admin_as, make_user, fleet):
    from deia.models import AuditLog

    user = make_user("bots.view_bot")
    response = admin_as(user).post(
        reverse("admin:bots_bot_changelist"),
        {"action": "stop_bots", "_selected_action": [fleet["blue"].pk, fleet["red"].pk]},
    )
    assert response.status_code == 403
    row = AuditLog.objects.get(action="bot.stop_denied")
    assert row.target == f"blue-bot, bot #{fleet['red'].pk}"
    assert row.details["requested"] == [str(fleet["blue"].pk), str(fleet["red"].pk)]
