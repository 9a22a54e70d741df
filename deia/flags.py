"""Run-time switches stored in the database, so every process on every host sees them."""

from __future__ import annotations

from deia.models import RuntimeFlag


def starts_frozen() -> bool:
    """True while new bot starts are frozen (the guide's "disable new bot launches")."""
    return RuntimeFlag.objects.filter(name=RuntimeFlag.FREEZE_STARTS, enabled=True).exists()
