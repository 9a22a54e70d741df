from __future__ import annotations

from django.apps import AppConfig


class BotsConfig(AppConfig):
    name = "bots"
    verbose_name = "Bots"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from bots import metrics  # noqa: F401  (declares stored metrics, registers fleet gauges)

        if self.apps.get_app_config("deia").celery:  # not in a bot runner
            from bots.tasks import connect_signals

            connect_signals()
