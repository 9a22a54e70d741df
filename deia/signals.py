"""Admin sign-ins and sign-outs are operator actions: audit them.

Failed sign-ins are audited up to and including the one that triggers a lockout
(django-axes), then the lockout itself once (auth.lockout); tries refused while locked
out write nothing, so a password-guessing script cannot fill the audit log.
"""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

from deia.audit import audit
from deia.audit_actions import Action


def refused_by_lockout(request) -> bool:
    """This try was turned away because of an existing lockout (not counted by axes)."""
    # axes sets axes_failures_since_start only when it counted this failure.
    counted = getattr(request, "axes_failures_since_start", None) is not None
    return bool(getattr(request, "axes_locked_out", False)) and not counted


def audit_login(sender, request, user, **kwargs) -> None:
    audit(Action.AUTH_LOGIN, user=user, request=request, target=user.get_username())


def audit_logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        audit(Action.AUTH_LOGOUT, user=user, request=request, target=user.get_username())


def audit_login_failed(sender, credentials, request=None, **kwargs) -> None:
    if request is not None and refused_by_lockout(request):
        return
    # Never store the password Django hands us in `credentials`.
    username = str(credentials.get("username", ""))[:150]
    audit(Action.AUTH_LOGIN_FAILED, actor=username or "anonymous", request=request, target=username)


def audit_lockout(sender, request, username=None, ip_address=None, **kwargs) -> None:
    if refused_by_lockout(request):
        return
    username = str(username or "")[:150]
    audit(
        Action.AUTH_LOCKOUT,
        actor=username or "anonymous",
        request=request,
        target=username,
        details={
            "failures": request.axes_failures_since_start,
            "cooloff_seconds": int(settings.AXES_COOLOFF_TIME.total_seconds()),
        },
    )


def connect_all() -> None:
    """Connected by DeiaConfig.ready(), once per process (dispatch_uid guards repeats)."""
    user_logged_in.connect(audit_login, dispatch_uid="deia.audit_login")
    user_logged_out.connect(audit_logout, dispatch_uid="deia.audit_logout")
    user_login_failed.connect(audit_login_failed, dispatch_uid="deia.audit_login_failed")
    # A bot runner has no django-axes (deia/settings_runner.py): nobody signs in there.
    if apps.is_installed("axes"):
        from axes.signals import user_locked_out

        user_locked_out.connect(audit_lockout, dispatch_uid="deia.audit_lockout")
