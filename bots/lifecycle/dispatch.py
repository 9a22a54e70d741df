"""Which queue runs a bot's next step, and sending it there.

Queue `bots` is consumed by every worker; queue `host.<name>` only by the workers of that
host. A bot with a process (starting, running, stopping) is handled on its own host,
because only that host can see and signal the process; anything else goes to `bots`.
"""

from __future__ import annotations

import logging

from django.conf import settings

from bots.models import PROCESS_STATES, Bot

log = logging.getLogger("deia.lifecycle")

SHARED_QUEUE = "bots"


def host_queue(host: str | None = None) -> str:
    return f"host.{host or settings.HOSTNAME}"


def queue_for(bot: Bot) -> str:
    if bot.host and bot.status in PROCESS_STATES:
        return host_queue(bot.host)
    return SHARED_QUEUE


def owned_elsewhere(bot: Bot) -> bool:
    """The bot's process lives on another host: only that host's worker may act on it."""
    return bool(bot.host) and bot.status in PROCESS_STATES and bot.host != settings.HOSTNAME


def send(task: str, args: list, queue: str, countdown: float | None = None) -> bool:
    """Enqueue by name. A broker outage is logged, not raised: beat's reconcile catches up."""
    from deia.celery import app

    try:
        app.send_task(task, args=args, queue=queue, countdown=countdown)
    except Exception as exc:  # noqa: BLE001 - kombu raises many kinds; the desired state is saved
        log.warning("enqueue failed", extra={"task": task, "queue": queue, "error": str(exc)})
        return False
    return True


def reconcile_soon(bot: Bot, *, queue: str | None = None, countdown: float | None = None) -> bool:
    return send("bots.tasks.reconcile_bot", [bot.pk], queue or queue_for(bot), countdown)
