"""A bot's admin page (bots.botpage): its live JSON, its Start/Stop/Restart buttons, its
audit trail and errors, through the admin client. Who may do what is also in the admin
matrix (tests/integration/authz/test_admin_matrix.py); the browser journey is
tests/e2e/test_bot_journey.py."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from bots.access import CHAT, OPERATE
from bots.botpage import VIEW_AUDIT
from bots.models import Bot, DesiredState, Status
from deia.audit import audit
from deia.models import AuditLog
from tests.support.perms import grant

pytestmark = pytest.mark.django_db
VIEW_BOT = "bots.view_bot"


def live_url(bot: Bot) -> str:
    return reverse("admin:bots_bot_live", args=[bot.pk])


def operate_url(bot: Bot, verb: str) -> str:
    return reverse("admin:bots_bot_operate", args=[bot.pk, verb])


def page_url(bot: Bot) -> str:
    return reverse("admin:bots_bot_change", args=[bot.pk])


@pytest.fixture
def team(db) -> Group:
    return Group.objects.create(name="blue")


@pytest.fixture
def bot(team) -> Bot:
    return Bot.objects.create(name="Helper", slug="helper", team=team)


@pytest.fixture
def staff(django_user_model, client, team):
    """staff(*perms) -> a test client signed in as a new staff member of the bot's team with those permissions."""
    numbers = itertools.count(1)

    def make(*perms: str):
        user = django_user_model.objects.create_user(f"staff{next(numbers)}", password="x", is_staff=True)
        user.groups.add(team)
        grant(user, *perms)
        client.force_login(user)
        return client

    return make


def bot_rows(bot: Bot) -> list[tuple[str, str]]:
    return list(AuditLog.objects.filter(target=bot.slug).order_by("id").values_list("action", "actor"))


def test_the_live_json_shows_the_process_as_the_lifecycle_wrote_it(admin_client, bot):
    started = timezone.now() - timedelta(minutes=5)
    Bot.objects.filter(pk=bot.pk).update(
        status=Status.RUNNING,
        desired_state=DesiredState.RUNNING,
        pid=4242,
        host="worker-1",
        advertise_host="10.0.0.7",
        port=18321,
        started_at=started,
        last_heartbeat=started,
        restart_count=2,
        last_error="model went away",
    )
    data = admin_client.get(live_url(bot)).json()
    assert data["status"] == "running" and data["status_display"] == "Running"
    assert (data["pid"], data["address"], data["host"]) == (4242, "10.0.0.7:18321", "worker-1")
    assert data["uptime"] == "5\xa0minutes" and 299 <= data["uptime_seconds"] <= 301
    assert data["last_heartbeat"] == started.isoformat().replace("+00:00", "Z")
    assert (data["name"], data["team"]) == ("Helper", "blue")  # the API's bot (BotSerializer), plus the page's words
    assert (data["restart_count"], data["last_error"], data["chat_ready"]) == (2, "model went away", True)

    # The next poll sees the next state, with no page load in between.
    Bot.objects.filter(pk=bot.pk).update(status=Status.CRASHED, last_error="exit code 1")
    data = admin_client.get(live_url(bot)).json()
    assert (data["status"], data["uptime"], data["uptime_seconds"], data["chat_ready"]) == ("crashed", "", None, False)
    assert data["last_error"] == "exit code 1"


def test_the_live_json_costs_the_same_few_queries_for_a_team_member_and_a_superuser(
    admin_client, staff, bot, django_assert_num_queries
):
    # Session, user, the bot.
    with django_assert_num_queries(3):
        assert admin_client.get(live_url(bot)).status_code == 200
    member = staff(VIEW_BOT)
    # Session, user, the user's permissions (one query: deia.auth), the bot (its team a subquery).
    with django_assert_num_queries(4):
        assert member.get(live_url(bot)).status_code == 200


def test_the_live_json_answers_json_errors_and_only_to_get(admin_client, staff, bot):
    assert admin_client.get(reverse("admin:bots_bot_live", args=["nope"])).json()["error"] == "not_found"
    assert admin_client.get(reverse("admin:bots_bot_live", args=[bot.pk + 1000])).status_code == 404
    assert admin_client.post(live_url(bot)).status_code == 405
    refused = staff().get(live_url(bot))
    assert refused.status_code == 403 and refused.json()["error"] == "permission_denied"


def test_a_button_asks_first_and_changes_nothing_until_confirmed(admin_client, bot, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        page = admin_client.post(operate_url(bot, "start"))
    assert page.status_code == 200
    assert "Start the bot Helper? It is stopped now." in page.content.decode()
    assert 'name="confirm" value="yes"' in page.content.decode()
    bot.refresh_from_db()
    assert bot.desired_state == DesiredState.STOPPED and callbacks == []
    assert AuditLog.objects.exclude(action__startswith="auth.").count() == 0


@pytest.mark.parametrize(
    ("verb", "desired"), [("start", DesiredState.RUNNING), ("stop", DesiredState.STOPPED), ("restart", "running")]
)
def test_a_confirmed_button_asks_the_lifecycle_once_and_comes_back_to_the_page(
    admin_client, bot, verb, desired, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(operate_url(bot, verb), {"confirm": "yes"}, REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 302 and response["Location"] == page_url(bot)
    assert [m.message for m in get_messages(response.wsgi_request)] == [f"Helper: {verb} requested"]
    bot.refresh_from_db()
    assert bot.desired_state == desired
    assert bot_rows(bot) == [(f"bot.{verb}", "admin")]
    assert AuditLog.objects.get(target=bot.slug).ip == "10.1.2.3"
    assert len(callbacks) == 1  # the reconcile, after the commit


def test_a_start_the_limits_refuse_is_said_at_error_level_and_audited(admin_client, bot, settings):
    settings.MAX_BOTS = 0
    response = admin_client.post(operate_url(bot, "start"), {"confirm": "yes"}, follow=True)
    [message] = list(get_messages(response.wsgi_request))
    assert message.level_tag == "error" and message.message.startswith("Helper: start refused: New bot starts")
    assert Bot.objects.get(pk=bot.pk).desired_state == DesiredState.STOPPED
    assert bot_rows(bot) == [("bot.start_refused", "admin")]


def test_a_button_is_post_only_and_knows_only_its_three_verbs(admin_client, bot):
    assert admin_client.get(operate_url(bot, "start")).status_code == 405
    assert admin_client.post(operate_url(bot, "explode"), {"confirm": "yes"}).status_code == 404
    not_an_id = reverse("admin:bots_bot_operate", args=["x1", "start"])
    assert admin_client.post(not_an_id, {"confirm": "yes"}).status_code == 404
    assert bot_rows(bot) == []


def test_the_buttons_the_chat_and_the_audit_trail_are_shown_only_with_their_permissions(staff, bot):
    def page(*perms: str) -> str:
        return staff(VIEW_BOT, *perms).get(page_url(bot)).content.decode()

    looker = page()
    assert 'id="bot-live"' in looker  # the live process, for everyone who sees the bot
    assert 'id="bot-start"' not in looker and 'id="bot-chat"' not in looker and 'id="bot-audit"' not in looker
    operator = page(OPERATE)
    for verb in ("start", "stop", "restart"):
        assert f'id="bot-{verb}"' in operator and operate_url(bot, verb) in operator
    chatter = page(CHAT)
    assert 'id="bot-chat"' in chatter and f'data-chat-url="/api/bots/{bot.pk}/messages"' in chatter
    assert 'id="bot-start"' not in chatter
    auditor = page(VIEW_AUDIT)
    assert 'id="bot-audit"' in auditor and 'id="bot-errors"' in auditor


def test_the_page_shows_this_bots_audit_trail_and_its_errors_newest_first(admin_client, bot):
    other = Bot.objects.create(name="Helper two", slug="helper-two")
    audit("bot.start", actor="alice", target=bot.slug, details={"already_running": False})
    audit("bot.start_error", actor="reconcile", target=bot.slug, details={"error": "port in use"})
    audit("bot.update", actor="bob", target=f"bots.bot:{bot.pk} Helper", details={"model_name": ["a", "b"]})
    audit("bot.crash", actor="reconcile", target=other.slug, details={"error": "not this bot"})
    audit("bot.update", actor="carol", target=f"bots.bot:{bot.pk}0 Other", details={})  # bot 10x, not this one
    text = admin_client.get(page_url(bot)).content.decode()
    trail = text[text.index('id="bot-audit"') :]
    errors = text[text.index('id="bot-errors"') : text.index('id="bot-audit"')]
    assert trail.index("bob") < trail.index("port in use") < trail.index("alice")
    assert "not this bot" not in text and "carol" not in text
    assert "port in use" in errors and "alice" not in errors and "bob" not in errors
    assert f"?q={bot.slug}" in trail  # the whole audit log, searched for the bot


def test_the_page_renders_in_a_bounded_number_of_queries(admin_client, bot, django_assert_max_num_queries):
    for i in range(30):
        audit("bot.start", actor=f"user{i}", target=bot.slug)
    with django_assert_max_num_queries(14):
        page = admin_client.get(page_url(bot))
    assert page.content.decode().count("<td>bot.start</td>") == 20


def test_the_page_runs_one_script_of_our_own_static_files_and_nothing_from_elsewhere(admin_client, bot):
    from django.contrib.staticfiles import finders

    text = admin_client.get(page_url(bot)).content.decode()
    assert '<script src="/static/bots/bot_page.js" defer></script>' in text
    assert finders.find("bots/bot_page.js")
    assert "//cdn" not in text and 'src="http' not in text and "src='http" not in text
