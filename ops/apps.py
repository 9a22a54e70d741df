from __future__ import annotations

from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Declare the metrics the web exports: the backup's, and the maintenance runs' (labelled by job).
        # The web's per-minute traffic figures are stored for the System Overview (ops.console).
        from deia import traffic
        from ops import maintenance, metrics  # noqa: F401
        from ops.console.samples import store_traffic

        traffic.add_sink(store_traffic)
