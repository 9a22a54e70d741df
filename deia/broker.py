"""Poison messages: a message on a Celery queue that cannot be read is logged, counted
(deia_task_rejected_total{queue}) and dropped, and the worker keeps consuming.

A bad message can fail in two layers; each is caught by the adapter of its library
(deia/adapters/kombu.py, deia/adapters/celery.py), wired in through settings
(CELERY_BROKER_TRANSPORT, CELERY_WORKER_CONSUMER), and counted here:

- kombu's Redis transport parses every popped message's envelope as JSON inside the
  worker's event loop. Bytes that are not UTF-8 or not JSON, or an envelope missing its
  fields, raise out of the loop and stop the worker ("Unrecoverable error:
  JSONDecodeError"). RedisTransport's channel catches that: the message is already off
  the list (BRPOP), so dropping it is not acknowledging anything, just not crashing.
- Celery's consumer already rejects an envelope with no task (on_unknown_message), an
  unknown task name (on_unknown_task), an invalid task message (on_invalid_task) and a
  body it cannot decode (on_decode_error); Consumer counts each, and makes sure a hook
  that trips over a malformed message still drops it rather than raising.
"""

from __future__ import annotations

import logging

from deia.adapters import celery, kombu
from deia.metrics import StoredMetric, declare
from deia.redact import redact

log = logging.getLogger("deia.broker")

TASKS_REJECTED = declare(
    StoredMetric(
        "deia_task_rejected_total",
        "counter",
        "Messages a Celery worker dropped because it could not read them (bad bytes, bad JSON, unknown task).",
        ("queue",),
        initial=(("bots",), ("maintenance",)),
    )
)


def count_rejected(queue: str, why: str, sample: object) -> None:
    """Log one dropped message and add it to deia_task_rejected_total{queue}."""
    log.error(
        "dropped a message that cannot be processed",
        extra={"queue": queue, "why": why, "sample": redact(repr(sample)[:200])},
    )
    try:
        TASKS_REJECTED.inc(queue=queue)
    except Exception:  # the count is not worth the worker: a database outage must not stop it
        log.exception("could not count the dropped message", extra={"queue": queue})


class RedisChannel(kombu.RedisChannel):
    def unreadable(self, queue: str, exc: Exception) -> None:
        count_rejected(queue, type(exc).__name__, exc)


RedisTransport = kombu.transport(RedisChannel)


class Consumer(celery.Consumer):
    def dropped(self, message, why: str) -> None:
        count_rejected(kombu.queue_of(message), why, getattr(message, "body", None))
