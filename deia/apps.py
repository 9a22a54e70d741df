from __future__ import annotations

from django.apps import AppConfig


class DeiaConfig(AppConfig):
    """The project itself: loads the Celery app so tasks sent from Django use its broker."""

    name = "deia"
    verbose_name = "DEIA Bot Controller"

    def ready(self) -> None:
        import deia.celery  # noqa: F401
