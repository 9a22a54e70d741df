"""Which queue runs a bot's next step, and sending it there.

Queue `bots` is consumed by every worker; queue `host.<name>` only by the workers of that
host. A bot with a process (starting, running, stopping) is handled on its own host,
because only that host can see and signal the process; so is a bot placed on a host
(bots.lifecycle.placement) and waiting for its start there. A lost bot's host is gone: it
and anything unplaced go to `bots`.
"""

from __future__ import annotations

import logging

from django.conf import settings

from bots.models import Bot, Status

log = logging.getLogger("deia.lifecycle")

SHARED_QUEUE = "bots"


def host_queue(host: str | None = None) -> str:
    return f"host.{host or settings.HOSTNAME}"


def queue_for(bot: Bot) -> str:
    if bot.host and bot.status != Status.LOST:
        return host_queue(bot.host)
    return SHARED_QUEUE


def owned_elsewhere(bot: Bot) -> bool:
    """The bot's process lives (or is placed to start) on another host: only that host's worker may act on it."""
    return bool(bot.host) and bot.status != Status.LOST and bot.host != settings.HOSTNAME


def send(task: str, args: list, queue: str, countdown: float | None = None, expires: float | None = None) -> bool:
    """Enqueue by name. A broker outage is logged, not raised: beat's reconcile catches up."""
    from deia.celery import app  # here, not at the top: a bot runner never loads Celery

    try:
        app.send_task(task, args=args, queue=queue, countdown=countdown, expires=expires)
    except Exception as exc:  # noqa: BLE001 - kombu raises many kinds; the desired state is saved
        log.warning("enqueue failed", extra={"task": task, "queue": queue, "error": str(exc)})
        return False
    return True


def loop_expiry(countdown: float | None = None) -> float:
    """Seconds after which the control loop's own task is discarded unrun.

    The next round sends a fresh one, so after a worker outage the queue holds no backlog
    of stale reconciles. Counted from the send, hence the countdown added.
    """
    return (countdown or 0) + settings.BOT_RECONCILE_INTERVAL


def reconcile_soon(
    bot: Bot, *, queue: str | None = None, countdown: float | None = None, from_loop: bool = False
) -> bool:
    """Reconcile one bot. An operator's request (from_loop=False) never expires: it carries intent."""
    expires = loop_expiry(countdown) if from_loop else None
    return send("bots.tasks.reconcile_bot", [bot.pk], queue or queue_for(bot), countdown, expires)


def reconcile_host_soon(host: str) -> bool:
    """Check every bot of `host` on its own worker; expires like every task of the loop."""
    return send("bots.tasks.reconcile_host", [host], host_queue(host), expires=loop_expiry())
