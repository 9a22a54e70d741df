from __future__ import annotations

from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from ops import checks, signals  # noqa: F401  (registers system checks and login audit)

        if self.apps.is_installed("django.contrib.admin"):
            from ops.admin_audit import audit_every_model_admin

            audit_every_model_admin()
