"""The one way to write an audit row."""

from __future__ import annotations

import logging
from typing import Any

from deia.audit_actions import Action, severity_of
from deia.models import AuditLog
from deia.proxies import client_ip

log = logging.getLogger("deia.audit")

# client_ip (re-exported here for the admin, the API and the lifecycle) is the one rule of
# deia/proxies.py: X-Forwarded-For counts only from TRUSTED_PROXIES.
__all__ = ["audit", "client_ip"]


def audit(
    action: Action | str,
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
    that the row and the change commit or roll back together. `action` must be declared in
    deia/audit_actions.py (ValueError otherwise, before anything is written).
    """
    severity = severity_of(action)
    action = str(action)
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
        severity=severity,
        target=str(target)[:200],
        details=details or {},
        ip=ip,
    )
    log.info("audit", extra={"action": action, "severity": severity, "actor": actor, "target": row.target})
    return row
