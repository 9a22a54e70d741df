"""Admin sign-ins and sign-outs are operator actions: audit them."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from ops.audit import audit


@receiver(user_logged_in, dispatch_uid="ops.audit_login")
def audit_login(sender, request, user, **kwargs) -> None:
    audit("auth.login", user=user, request=request, target=user.get_username())


@receiver(user_logged_out, dispatch_uid="ops.audit_logout")
def audit_logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        audit("auth.logout", user=user, request=request, target=user.get_username())


@receiver(user_login_failed, dispatch_uid="ops.audit_login_failed")
def audit_login_failed(sender, credentials, request=None, **kwargs) -> None:
    # Never store the password Django hands us in `credentials`.
    username = str(credentials.get("username", ""))[:150]
    audit("auth.login_failed", actor=username or "anonymous", request=request, target=username)
