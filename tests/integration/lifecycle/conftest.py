from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_user("operator", password="x")


@pytest.fixture
def api(operator) -> APIClient:
    """An API client authenticated with the operator's token, as a script would be."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=operator).key}")
    return client
