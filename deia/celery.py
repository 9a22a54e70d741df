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


def connect_signals() -> None:
    """One request id follows an operator's action into the worker that carries it out:
    the id of the request that sent a task travels as a message header and is set in the
    worker's log context while the task runs. Connected by DeiaConfig.ready() (web, worker
    and beat all set Django up; Celery's Django fixup does it in a worker)."""
    signals.before_task_publish.connect(_send_request_id, dispatch_uid="deia.send_request_id")
    signals.task_prerun.connect(_receive_request_id, dispatch_uid="deia.receive_request_id")
    signals.task_postrun.connect(_forget_request_id, dispatch_uid="deia.forget_request_id")


def _send_request_id(headers: dict | None = None, **kwargs) -> None:
    request_id = get_request_id()
    if headers is not None and request_id != "-":
        headers.setdefault("request_id", request_id)


def _receive_request_id(task=None, **kwargs) -> None:
    incoming = getattr(task.request, "request_id", None) if task is not None else None
    task.request._deia_request_token = set_request_id(new_request_id(incoming))


def _forget_request_id(task=None, **kwargs) -> None:
    token = getattr(task.request, "_deia_request_token", None) if task is not None else None
    if token is not None:
        reset_request_id(token)
