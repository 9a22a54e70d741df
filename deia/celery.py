from __future__ import annotations

from celery import Celery

from deia.config import import_settings_or_exit

import_settings_or_exit()
app = Celery("deia")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
