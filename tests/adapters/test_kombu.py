"""deia.adapters.kombu: pins kombu's Redis channel as the adapter uses it (a message that
cannot be parsed reaches `unreadable` with the queue it was popped from; the channel
keeps consuming)."""

from __future__ import annotations

import uuid
from queue import Empty

import pytest
from django.conf import settings
from kombu import Connection

from deia.adapters.kombu import RedisChannel, queue_of, transport
from tests.adapters.pins import assert_installed_as_pinned


class RecordingChannel(RedisChannel):
    seen: list = []

    def unreadable(self, queue: str, exc: Exception) -> None:
        self.seen.append((queue, type(exc).__name__))


def test_kombu_is_the_version_the_adapter_was_written_against():
    assert_installed_as_pinned("kombu")


@pytest.fixture
def queue_name(redis_client):
    return f"pin-{uuid.uuid4().hex[:8]}"


def test_a_message_that_is_not_json_reaches_unreadable_and_the_next_one_is_read(redis_client, queue_name):
    RecordingChannel.seen = []
    with Connection(settings.REDIS_URL, transport=transport(RecordingChannel)) as connection:
        queue = connection.SimpleQueue(queue_name)
        redis_client.lpush(queue_name, b"{not json")
        with pytest.raises(Empty):
            queue.get(timeout=1)
        queue.put({"hello": "world"})
        message = queue.get(timeout=5)
        message.ack()
        popped_from = queue_of(message)
        queue.close()

    assert RecordingChannel.seen == [(queue_name, "JSONDecodeError")]
    assert message.payload == {"hello": "world"}
    assert popped_from == queue_name


def test_without_an_override_the_channel_raises_as_kombu_does(redis_client, queue_name):
    with Connection(settings.REDIS_URL, transport=transport(RedisChannel)) as connection:
        queue = connection.SimpleQueue(queue_name)
        redis_client.lpush(queue_name, b"{not json")
        with pytest.raises(ValueError):
            queue.get(timeout=1)
        queue.close()


def test_a_message_without_a_redis_channel_is_known_by_its_routing_key():
    class Message:
        delivery_info = {"routing_key": "maintenance"}

    assert queue_of(Message()) == "maintenance"
    assert queue_of(object()) == "unknown"
