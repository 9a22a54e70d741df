from __future__ import annotations

from django.apps import AppConfig


class DeiaConfig(AppConfig):
    """The project and the infrastructure every app uses: the audit log, run-time flags,
    stored metrics, sign-in auditing, the settings' system checks and the Celery app.

    Listed after the admin and the third-party apps, so that by ready() every ModelAdmin
    is registered and gets the audit mixin.
    """

    name = "deia"
    verbose_name = "DEIA Bot Controller"
    default_auto_field = "django.db.models.BigAutoField"
    default = True
    # Whether this process has the Celery app (apps connect their Celery signals only then).
    celery = True

    def ready(self) -> None:
        import deia.celery  # tasks sent from Django use its broker

        deia.celery.connect_signals()
        self.connect()

    def connect(self) -> None:
        from django.core.signals import request_finished

        from deia import checks, signals, traffic
        from deia.metrics import update_pool_gauges

        checks.register_all()
        signals.connect_all()
        # After Django's own request_finished receiver has put the connection back in the pool.
        request_finished.connect(update_pool_gauges, dispatch_uid="deia.update_pool_gauges")
        # This process's per-minute traffic figures go to their sinks at most every few seconds.
        request_finished.connect(traffic.flush_if_due, dispatch_uid="deia.traffic.flush_if_due")
        if self.apps.is_installed("django.contrib.admin"):
            from deia.admin_audit import audit_every_model_admin

            audit_every_model_admin()


class RunnerConfig(DeiaConfig):
    """The same app in a bot runner (deia/settings_runner.py): no Celery app, no admin."""

    default = False
    celery = False

    def ready(self) -> None:
        self.connect()
