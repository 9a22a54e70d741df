"""Poison messages: a message on a Celery queue that cannot be read is logged, counted
(deia_task_rejected_total{queue}) and dropped, and the worker keeps consuming.

A bad message can fail in two layers, and each is handled here through its own public
extension point (settings: CELERY_BROKER_TRANSPORT, CELERY_WORKER_CONSUMER):

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

import contextlib
import logging
from queue import Empty

from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.transport import redis as kombu_redis
from redis.exceptions import RedisError

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


class RedisChannel(kombu_redis.Channel):
    def _brpop_read(self, **options):
        try:
            return super()._brpop_read(**options)
        except Empty:
            raise
        except Exception as exc:
            # kombu counts KeyError among connection errors, but an envelope missing its
            # fields raises it too: only a real connection problem goes up to the consumer.
            if isinstance(exc, RedisError | OSError) or (
                isinstance(exc, self.connection.connection_errors) and not isinstance(exc, KeyError)
            ):
                raise
            count_rejected(self._popped_queue(), type(exc).__name__, exc)
            return True

    def _popped_queue(self) -> str:
        # _brpop_read moves the queue it popped from to the end of the cycle before parsing.
        items = getattr(self._queue_cycle, "items", None)
        return items[-1] if items else "unknown"


class RedisTransport(kombu_redis.Transport):
    Channel = RedisChannel


def _queue_of(message) -> str:
    channel = getattr(message, "channel", None)
    if isinstance(channel, RedisChannel):
        return channel._popped_queue()
    info = getattr(message, "delivery_info", None) or {}
    return str(info.get("routing_key") or "unknown")


class Consumer(CeleryConsumer):
    def _drop(self, handler, message, why: str, *args) -> None:
        try:
            handler(*args)
        except Exception:
            log.exception("Celery's handler failed on a bad message; dropping it all the same")
            with contextlib.suppress(Exception):
                message.reject()
        count_rejected(_queue_of(message), why, getattr(message, "body", None))

    def on_decode_error(self, message, exc):
        self._drop(super().on_decode_error, message, "undecodable body", message, exc)

    def on_unknown_message(self, body, message):
        self._drop(super().on_unknown_message, message, "not a task message", body, message)

    def on_unknown_task(self, body, message, exc):
        self._drop(super().on_unknown_task, message, "unknown task", body, message, exc)

    def on_invalid_task(self, body, message, exc):
        self._drop(super().on_invalid_task, message, "invalid task message", body, message, exc)
