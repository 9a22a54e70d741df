"""Issuing and revoking API tokens: the audited verbs the admin and `manage.py apitoken` call.

The key is returned once, to the caller that shows it; it is never audited or logged
(the audit target is "token <prefix> of <user>").
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from deia.apitokens.models import ApiToken
from deia.audit import audit
from deia.audit_actions import Action


def create_token(
    user, *, name: str = "", expires_at: datetime | None = None, by=None, actor: str | None = None, request=None
) -> tuple[ApiToken, str]:
    """A new token for `user`, audited as token.create by `by` (a user) or `actor`."""
    with transaction.atomic():
        token, key = ApiToken.objects.issue(user, name=name, expires_at=expires_at)
        audit(
            Action.TOKEN_CREATE,
            user=by,
            actor=actor,
            request=request,
            target=str(token),
            details={"name": name, "expires_at": expires_at.isoformat() if expires_at else None},
        )
    return token, key


def revoke_token(token: ApiToken, *, by=None, actor: str | None = None, request=None) -> bool:
    """Revoke now (the next request with it is refused); False if it already was revoked."""
    with transaction.atomic():
        if not token.revoke():
            return False
        audit(Action.TOKEN_REVOKE, user=by, actor=actor, request=request, target=str(token))
    return True
