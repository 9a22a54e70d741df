"""A message no worker can read is logged, counted and dropped; the workers keep consuming.

Garbage goes straight onto the queues' Redis lists (LPUSH, where kombu's Redis transport
keeps messages): bytes that are not UTF-8, text that is not JSON, JSON that is not a
message envelope, and a well-formed envelope naming a task nobody has.
"""

from __future__ import annotations

import base64
import json

import pytest

from bots import lifecycle
from bots.models import Bot, Status
from tests.plugins.maintenance import metric
from tests.plugins.observability import parse_samples, value
from tests.support.procs import PYTHON, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def unknown_task(queue: str) -> bytes:
    body = base64.b64encode(json.dumps([[], {}, {}]).encode()).decode()
    return json.dumps(
        {
            "body": body,
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"lang": "py", "task": "no.such.task", "id": "poison-1"},
            "properties": {
                "body_encoding": "base64",
                "delivery_tag": f"poison-{queue}",
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": 0,
            },
        }
    ).encode()


def garbage(queue: str) -> list[bytes]:
    return [b"\xff\xfe\x00 not utf-8", b"{not json", b'{"hello": "world"}', b"[1, 2]", unknown_task(queue)]


def test_garbage_on_every_queue_is_dropped_and_counted_and_bots_still_start(
    bot_worker, spawn, child_env, redis_client, client
):
    worker = bot_worker("host-a")
    args = [PYTHON, "-m", "celery", "-A", "deia", "worker", "-Q", "maintenance", "-c", "1", "-n", "maint@%h"]
    args += ["--without-mingle", "--without-gossip", "-l", "INFO"]
    maintenance = spawn(args, {**child_env, "LOG_LEVEL": "INFO"}, "worker-maint")
    wait_for(lambda: " ready." in maintenance.output(), timeout=60, what="maintenance worker ready")
    queues = ["bots", "host.host-a", "maintenance"]
    for queue in queues:
        for item in garbage(queue):
            redis_client.lpush(queue, item)

    for queue in queues:
        wait_for(
            lambda q=queue: metric("deia_task_rejected_total", queue=q) == len(garbage(q)),
            timeout=30,
            what=f"{len(garbage(queue))} messages counted as rejected on {queue}",
        )
    assert all(redis_client.llen(queue) == 0 for queue in queues)

    bot = Bot.objects.create(name="After poison", slug="after-poison")
    lifecycle.request_start(bot, actor="test")

    def running() -> bool:
        bot.refresh_from_db()
        return bot.status == Status.RUNNING

    wait_for(running, timeout=30, what="bot running after the garbage")
    assert worker.proc.running() and maintenance.running()
    assert "Unrecoverable error" not in worker.proc.output() + maintenance.output()

    samples = parse_samples(client.get("/metrics").content.decode())
    for queue in queues:
        assert value(samples, "deia_task_rejected_total", queue=queue) == len(garbage(queue))
