from __future__ import annotations

import sys

from celery import Celery, signals

from deia.config import import_settings_or_exit, leave_metrics_multiprocess_mode, owner_only_files
from deia.logs import get_request_id, new_request_id, reset_request_id, set_request_id

owner_only_files()
if "gunicorn" not in sys.argv[0]:
    leave_metrics_multiprocess_mode()
import_settings_or_exit()
app = Celery("deia")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# One request id follows an operator's action into the worker that carries it out: the
# id of the request that sent a task travels as a message header and is set in the
# worker's log context while the task runs.
@signals.before_task_publish.connect
def _send_request_id(headers: dict | None = None, **kwargs) -> None:
    request_id = get_request_id()
    if headers is not None and request_id != "-":
        headers.setdefault("request_id", request_id)


@signals.task_prerun.connect
def _receive_request_id(task=None, **kwargs) -> None:
    incoming = getattr(task.request, "request_id", None) if task is not None else None
    task.request._deia_request_token = set_request_id(new_request_id(incoming))


@signals.task_postrun.connect
def _forget_request_id(task=None, **kwargs) -> None:
    token = getattr(task.request, "_deia_request_token", None) if task is not None else None
    if token is not None:
        reset_request_id(token)
