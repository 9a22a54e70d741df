"""The API's floor: GET /api/bots's work with no framework around it.

A plain WSGI callable, served by the same gunicorn, uvicorn worker and a2wsgi thread pool
as the API (bench/asgi.py), that does what the API must do and nothing else: the same
API-token lookup (ApiToken.objects.matching, the same refusals, the same touch), the same
visibility rule and query (BotViewSet's queryset through bots.access.visible_bots), the
same fields, and the connection hand-back Django's handler does at the end of a
request. No middleware, no DRF (no content negotiation, throttle, permission classes or
exception handler), no URL resolver. The API's throughput over this view's is our overhead.
"""

from __future__ import annotations

import json

from django.db import close_old_connections

from bots import access
from bots.api import BotViewSet
from bots.serializers import BotSerializer
from deia.apitokens.models import ApiToken

UNAUTHORIZED = b'{"error": "not_authenticated", "detail": "Invalid token."}'


def user_of(authorization: str):
    words = authorization.split()
    if len(words) != 2 or words[0].lower() != "token":
        return None
    token = ApiToken.objects.matching(words[1])
    if token is None or token.revoked_at is not None or token.is_expired() or not token.user.is_active:
        return None
    token.touch()
    return token.user


def application(environ, start_response):
    close_old_connections()
    try:
        user = user_of(environ.get("HTTP_AUTHORIZATION", ""))
        if user is None:
            status, body = "401 Unauthorized", UNAUTHORIZED
        else:
            bots = access.visible_bots(user, BotViewSet.queryset.all())
            serializer = BotSerializer()
            body = json.dumps([serializer.to_representation(bot) for bot in bots]).encode()
            status = "200 OK"
    finally:
        close_old_connections()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
