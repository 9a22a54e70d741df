"""The one way to write an audit row."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from django.conf import settings

from ops.models import AuditLog

log = logging.getLogger("deia.audit")


def client_ip(request) -> str | None:
    """The caller's address; X-Forwarded-For is believed only behind a trusted proxy."""
    if request is None:
        return None
    candidate = request.META.get("REMOTE_ADDR")
    if settings.TRUST_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            # The proxy appends the address it saw; anything before it is client-supplied.
            candidate = hops[-1]
    try:
        return str(ipaddress.ip_address(candidate)) if candidate else None
    except ValueError:
        return None


def audit(
    action: str,
    *,
    actor: str | None = None,
    user=None,
    request=None,
    target: Any = "",
    details: dict | None = None,
    ip: str | None = None,
) -> AuditLog:
    """Write one audit row.

    `actor` is a system actor's name ("reconcile", "celery"); otherwise it is taken from
    `user`, or from `request.user`. Call it inside the transaction that made the change so
    that the row and the change commit or roll back together.
    """
    if user is None and request is not None:
        candidate = getattr(request, "user", None)
        if candidate is not None and candidate.is_authenticated:
            user = candidate
    if actor is None:
        actor = user.get_username() if user is not None else "anonymous"
    if ip is None:
        ip = client_ip(request)
    row = AuditLog.objects.create(
        actor=actor,
        user=user,
        action=action,
        target=str(target)[:200],
        details=details or {},
        ip=ip,
    )
    log.info("audit", extra={"action": action, "actor": actor, "target": row.target})
    return row
