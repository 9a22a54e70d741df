from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.support.tokens import token_client


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_user("operator", password="x")


@pytest.fixture
def api(operator) -> APIClient:
    """An API client authenticated with the operator's token, as a script would be."""
    return token_client(operator)
