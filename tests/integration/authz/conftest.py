"""The permission matrix's world: two teams with a bot each, and users made to measure.

- `teams`: groups "blue" (the users' own team) and "red" (another team).
- `own_bot` (team blue), `other_bot` (team red), `teamless_bot` (no team), each with one
  chat message.
- `make_user(*perms, team="blue", staff=True)`: a user in that team holding those permissions.
- `api_as(user)`: an APIClient with the user's token (or anonymous with None).
- `admin_as(user)`: a test Client logged in as the user (or anonymous with None).
"""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from rest_framework.test import APIClient

from bots.models import Bot, ChatMessage, DesiredState, Role
from tests.support.perms import grant
from tests.support.tokens import api_key

OWN, OTHER = "blue", "red"


@pytest.fixture
def teams(db) -> dict[str, Group]:
    return {name: Group.objects.create(name=name) for name in (OWN, OTHER)}


def _bot(name: str, team: Group | None) -> Bot:
    bot = Bot.objects.create(name=name.title(), slug=name, team=team, desired_state=DesiredState.STOPPED)
    ChatMessage.objects.create(bot=bot, role=Role.USER, content=f"a secret of {name}")
    return bot


@pytest.fixture
def own_bot(teams) -> Bot:
    return _bot("blue-bot", teams[OWN])


@pytest.fixture
def other_bot(teams) -> Bot:
    return _bot("red-bot", teams[OTHER])


@pytest.fixture
def teamless_bot(db) -> Bot:
    return _bot("lone-bot", None)


@pytest.fixture
def make_user(django_user_model, teams):
    numbers = itertools.count(1)

    def make(*perms: str, team: str | None = OWN, staff: bool = True, **fields):
        user = django_user_model.objects.create_user(f"user{next(numbers)}", password="x", is_staff=staff, **fields)
        if team:
            user.groups.add(teams[team])
        grant(user, *perms)
        return user

    return make


@pytest.fixture
def api_as():
    def client(user) -> APIClient:
        api = APIClient()
        if user is not None:
            api.credentials(HTTP_AUTHORIZATION=f"Token {api_key(user)}")
        return api

    return client


@pytest.fixture
def admin_as():
    def client(user) -> Client:
        browser = Client()
        if user is not None:
            browser.force_login(user)
        return browser

    return client
