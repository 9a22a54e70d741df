"""deia.adapters.celery: pins the worker consumer's hooks for messages it cannot use
(names and signatures), and that a hook tripping over a message still drops it."""

from __future__ import annotations

import inspect

from celery.worker.consumer import Consumer as CeleryConsumer

from deia.adapters.celery import Consumer
from tests.adapters.pins import assert_installed_as_pinned

HOOKS = {
    "on_decode_error": ["self", "message", "exc"],
    "on_unknown_message": ["self", "body", "message"],
    "on_unknown_task": ["self", "body", "message", "exc"],
    "on_invalid_task": ["self", "body", "message", "exc"],
}


def test_celery_is_the_version_the_adapter_was_written_against():
    assert_installed_as_pinned("celery")


def test_the_consumer_hooks_exist_with_the_signatures_overridden():
    for name, parameters in HOOKS.items():
        assert list(inspect.signature(getattr(CeleryConsumer, name)).parameters) == parameters, name
        assert name in vars(Consumer), name


class BrokenMessage:
    """Celery's own handler fails on it (it has no reject_log_error)."""

    body = b"garbage"

    def __init__(self) -> None:
        self.rejected = False

    def reject(self) -> None:
        self.rejected = True


def test_a_message_celerys_hook_trips_over_is_rejected_and_reported_dropped():
    dropped = []

    class Recording(Consumer):
        def __init__(self) -> None:  # no worker needed to call a hook
            pass

        def dropped(self, message, why: str) -> None:
            dropped.append(why)

    message = BrokenMessage()

    Recording().on_unknown_message({"not": "a task"}, message)

    assert message.rejected
    assert dropped == ["not a task message"]
