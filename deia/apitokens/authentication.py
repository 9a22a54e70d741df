"""DRF authentication by "Authorization: Token <key>" against hashed API tokens."""

from __future__ import annotations

import re

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from deia.apitokens.models import ApiToken
from deia.throttling import AnonRateThrottle

KEYWORD = "Token"
# Anything else (non-ASCII, punctuation, overlong) is refused before touching the database.
KEY_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,128}")


class ApiTokenAuthentication(BaseAuthentication):
    """Token authentication with hashed keys, expiry, revocation and last use.

    A refused key counts against the caller's anonymous rate (API_THROTTLE_ANON): DRF
    checks throttles only after authentication, so without this a script guessing keys
    would never be slowed down.
    """

    def authenticate(self, request):
        words = request.META.get("HTTP_AUTHORIZATION", "").split()
        if not words or words[0].lower() != KEYWORD.lower():
            return None
        if len(words) != 2 or not KEY_SHAPE.fullmatch(words[1]):
            self.refuse(request, "Invalid token header.")
        token = ApiToken.objects.matching(words[1])
        if token is None or token.revoked_at is not None:
            self.refuse(request, "Invalid token.")
        if token.is_expired():
            self.refuse(request, "Token expired.")
        if not token.user.is_active:
            self.refuse(request, "User inactive or deleted.")
        token.touch()
        return token.user, token

    def authenticate_header(self, request) -> str:
        return KEYWORD

    @staticmethod
    def refuse(request, message: str):
        throttle = AnonRateThrottle()
        if not throttle.allow_failed_authentication(request):
            raise exceptions.Throttled(throttle.wait())
        raise exceptions.AuthenticationFailed(message)
