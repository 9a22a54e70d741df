"""API tokens for tests: what an operator's script would hold."""

from __future__ import annotations

from rest_framework.test import APIClient


def api_key(user, **kwargs) -> str:
    """A new API token's key for user (kwargs: name, expires_at)."""
    from deia.apitokens.models import ApiToken

    return ApiToken.objects.issue(user, **kwargs)[1]


def token_client(user, **kwargs) -> APIClient:
    """An API client sending "Authorization: Token <key>" for a new token of user."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_key(user, **kwargs)}")
    return client
