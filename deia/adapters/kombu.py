"""The adapter for kombu's Redis transport: a channel that survives a message it cannot read.

kombu parses every popped message's envelope as JSON inside the worker's event loop, in
the private `Channel._brpop_read`: bytes that are not UTF-8 or not JSON, or an envelope
missing its fields, raise out of the loop and stop the worker ("Unrecoverable error:
JSONDecodeError"). The message is already off the list (BRPOP) by then, so dropping it
acknowledges nothing. Relied on (tests/adapters/test_kombu.py pins it): `_brpop_read`
pops, rotates the queue it popped from to the end of `_queue_cycle.items`, then parses.
"""

from __future__ import annotations

from queue import Empty

from kombu.transport import redis as kombu_redis
from redis.exceptions import RedisError


class RedisChannel(kombu_redis.Channel):
    """Calls `unreadable(queue, exc)` for a popped message it cannot parse, instead of raising."""

    def unreadable(self, queue: str, exc: Exception) -> None:
        raise exc

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
            self.unreadable(self.popped_queue(), exc)
            return True

    def popped_queue(self) -> str:
        """The queue the last message came from (kombu moved it to the end of the cycle)."""
        items = getattr(self._queue_cycle, "items", None)
        return items[-1] if items else "unknown"


def transport(channel: type[RedisChannel]) -> type[kombu_redis.Transport]:
    """kombu's Redis transport with `channel` (for CELERY_BROKER_TRANSPORT)."""
    return type("RedisTransport", (kombu_redis.Transport,), {"Channel": channel})


def queue_of(message) -> str:
    """The queue a message came from: the channel's last pop, or its routing key."""
    channel = getattr(message, "channel", None)
    if isinstance(channel, RedisChannel):
        return channel.popped_queue()
    info = getattr(message, "delivery_info", None) or {}
    return str(info.get("routing_key") or "unknown")
