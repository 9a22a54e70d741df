from __future__ import annotations

import sys

from celery import Celery

from deia.config import import_settings_or_exit, leave_metrics_multiprocess_mode

if "gunicorn" not in sys.argv[0]:
    leave_metrics_multiprocess_mode()
import_settings_or_exit()
app = Celery("deia")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
