"""What the permission matrix checks after a refused request: nothing changed, nothing queued.

Shared by the API and admin matrices (test_api_matrix.py, test_admin_matrix.py).
"""

from __future__ import annotations

from bots.models import Bot, ChatMessage
from deia.models import AuditLog


def world() -> dict:
    """Every bot row and the number of messages, to compare before and after a request."""
    return {"bots": list(Bot.objects.order_by("pk").values()), "messages": ChatMessage.objects.count()}


def audit_rows() -> list[tuple[str, str, str]]:
    """The audit rows written, sign-ins aside (the admin client's force_login writes one)."""
    rows = AuditLog.objects.exclude(action__startswith="auth.").order_by("id")
    return list(rows.values_list("action", "actor", "target"))


def assert_untouched(before: dict, callbacks: list) -> None:
    """Nothing changed in the database and nothing was enqueued (no on-commit dispatch)."""
    assert world() == before
    assert callbacks == []
