from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from bots.access import CHAT, MANAGE_ALL, OPERATE
from tests.support.perms import grant
from tests.support.tokens import token_client


@pytest.fixture
def operator(django_user_model):
    """An operator of the whole fleet: starts, stops and chats with every team's bots."""
    user = django_user_model.objects.create_user("operator", password="x")
    grant(user, OPERATE, CHAT, MANAGE_ALL)
    return user


@pytest.fixture
def api(operator) -> APIClient:
    """An API client authenticated with the operator's token, as a script would be."""
    return token_client(operator)
