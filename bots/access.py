"""Who may see and do what with bots: the one rule, used by the API, the admin and the chat path.

Permissions (declared on Bot.Meta.permissions):
    OPERATE     bots.operate_bot      start, stop, restart
    CHAT        bots.chat_bot         send messages and read a bot's messages
    MANAGE_ALL  bots.manage_all_bots  see and act on every team's bots
    MANAGE_HOSTS bots.manage_hosts    drain and undrain hosts (admin, as manage.py host does)

Teams: a bot may belong to a team (a django.contrib.auth Group). A superuser or a holder
of MANAGE_ALL sees every bot; anyone else sees only the bots whose team is one of their
groups. A bot with no team is seen only by superusers and MANAGE_ALL holders. A bot one
cannot see does not exist for them: it is absent from lists and answers 404, never 403.

The permission check never depends on the bot (it is answered before the bot is looked
up), so a refusal says nothing about which bots exist.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import Group
from django.db.models import QuerySet
from rest_framework import permissions

from bots.models import Bot
from deia.audit import audit
from deia.audit_actions import Action

OPERATE = "bots.operate_bot"
CHAT = "bots.chat_bot"
MANAGE_ALL = "bots.manage_all_bots"
MANAGE_HOSTS = "bots.manage_hosts"

# What each API action (BotViewSet's, and the async chat view's "messages") needs beyond a
# login. An action missing from this table is refused: a new action must say what it needs.
ACTION_PERMISSIONS: dict[str, str | None] = {
    "list": None,
    "retrieve": None,
    "metadata": None,
    "start": OPERATE,
    "stop": OPERATE,
    "restart": OPERATE,
    "messages": CHAT,
}
OPERATE_ACTIONS = ("start", "stop", "restart")


def may(user, perm: str) -> bool:
    """True if `user` holds `perm`; superusers hold every permission, inactive or anonymous users none."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or user.has_perm(perm)


def sees_all(user) -> bool:
    return may(user, MANAGE_ALL)


def visible_bots(user, queryset: QuerySet[Bot] | None = None) -> QuerySet[Bot]:
    """The bots `user` may see: every bot for managers, their teams' bots for the others."""
    queryset = Bot.objects.all() if queryset is None else queryset
    if user is None or not user.is_authenticated or not user.is_active:
        return queryset.none()
    if sees_all(user):
        return queryset
    # One query: team_id IN (SELECT group_id FROM auth_user_groups WHERE user_id = ...).
    return queryset.filter(team__in=user.groups.values("pk"))


def team_choices(user):
    """The teams `user` may give a bot: every group for managers, their own groups otherwise."""
    return Group.objects.all() if sees_all(user) else user.groups.all()


def audit_denied(verb: str, user, requested_ids: Iterable, *, request=None) -> None:
    """One `bot.<verb>_denied` row for one refused attempt, naming the bots the user may see.

    The target is the bot's slug when one visible bot was asked for, else the ids as asked
    (never the name of a bot the user may not see).
    """
    requested = [str(pk) for pk in requested_ids]
    ids = [int(pk) for pk in requested if pk.isdigit()]
    slugs = dict(visible_bots(user).filter(pk__in=ids).values_list("pk", "slug"))
    names = [slugs.get(int(pk), f"bot #{pk}") if pk.isdigit() else f"bot #{pk}" for pk in requested]
    audit(
        Action(f"bot.{verb}_denied"),
        user=user,
        request=request,
        target=", ".join(names),
        details={"requested": requested[:100], "needs": OPERATE},
    )


class BotActionPermission(permissions.BasePermission):
    """The API's check: a login for reading bots, OPERATE to start/stop/restart, CHAT for messages.

    Looks only at request.user, request.method and view.action, so any view that sets
    `action` (the viewset, the async chat view) can use it. Visibility (404 for other
    teams' bots) is the view's queryset: visible_bots().
    """

    code = "permission_denied"
    message = "You do not have permission to perform this action."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if user is None or not user.is_authenticated:
            return False  # DRF answers 401 with the authenticator's WWW-Authenticate
        if not hasattr(view, "action"):
            self.message = "This view does not say which action it is."
            return False
        action = view.action
        if action is None:
            return True  # a method the view does not route (GET on /start): it answers 405
        if action not in ACTION_PERMISSIONS:
            self.message = f"The action {action!r} is not allowed here."
            return False
        needed = ACTION_PERMISSIONS[action]
        if needed is None or may(user, needed):
            return True
        self.message = f"This needs the {needed} permission ({request.method} {action})."
        return False
