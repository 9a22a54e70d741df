"""The adapter for Celery's worker consumer: its hooks for messages it cannot use.

Celery's consumer already rejects an envelope with no task (`on_unknown_message`), an
unknown task name (`on_unknown_task`), an invalid task message (`on_invalid_task`) and a
body it cannot decode (`on_decode_error`); these hooks are the worker's internals, not a
documented extension point. `Consumer` calls `dropped(message, why)` after each, and makes
sure a hook that trips over a malformed message still drops it rather than raising.
tests/adapters/test_celery.py pins the hooks' names and signatures.
"""

from __future__ import annotations

import contextlib
import logging

from celery.worker.consumer import Consumer as CeleryConsumer

log = logging.getLogger("deia.broker")


class Consumer(CeleryConsumer):
    def dropped(self, message, why: str) -> None:
        """Called once Celery has rejected a message it cannot use."""

    def _drop(self, handler, message, why: str, *args) -> None:
        try:
            handler(*args)
        except Exception:
            log.exception("Celery's handler failed on a bad message; dropping it all the same")
            with contextlib.suppress(Exception):
                message.reject()
        self.dropped(message, why)

    def on_decode_error(self, message, exc):
        self._drop(super().on_decode_error, message, "undecodable body", message, exc)

    def on_unknown_message(self, body, message):
        self._drop(super().on_unknown_message, message, "not a task message", body, message)

    def on_unknown_task(self, body, message, exc):
        self._drop(super().on_unknown_task, message, "unknown task", body, message, exc)

    def on_invalid_task(self, body, message, exc):
        self._drop(super().on_invalid_task, message, "invalid task message", body, message, exc)
