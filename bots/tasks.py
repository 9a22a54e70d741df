"""Lifecycle tasks: thin wrappers taking ids (JSON), each calling one lifecycle function.

All are acks_late (settings) and idempotent: a task redelivered after a worker crash finds
the transition done, or claimed by someone else, and does nothing.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import celeryd_after_setup, worker_ready, worker_shutdown
from django.conf import settings

from bots.lifecycle import dispatch, drain, hosts, reconcile, stop, template, transitions
from bots.lifecycle.machine import Outcome
from bots.models import Bot

log = logging.getLogger("deia.lifecycle")


def connect_signals() -> None:
    """Connected by BotsConfig.ready() where Celery runs (a worker sets Django up before this fires)."""
    celeryd_after_setup.connect(consume_host_queue, dispatch_uid="bots.consume_host_queue")
    worker_ready.connect(start_runner_template, dispatch_uid="bots.start_runner_template")
    worker_ready.connect(start_host_heartbeat, dispatch_uid="bots.start_host_heartbeat")
    worker_shutdown.connect(stop_host_heartbeat, dispatch_uid="bots.stop_host_heartbeat")


def consume_host_queue(sender, instance, **kwargs) -> None:
    """Every worker serving `bots` also serves its own host's queue (DEIA_HOSTNAME)."""
    queues = instance.app.amqp.queues
    if dispatch.SHARED_QUEUE in queues.consume_from:
        queues.select_add(dispatch.host_queue())
        log.info("consuming host queue", extra={"queue": dispatch.host_queue(), "host": settings.HOSTNAME})


def start_runner_template(sender, **kwargs) -> None:
    """A worker serving `bots` starts its host's runner template, unless a current one runs."""
    queues = sender.app.amqp.queues
    if dispatch.SHARED_QUEUE in queues.consume_from:
        template.ensure_started()


_heartbeat: hosts.Heartbeat | None = None


def start_host_heartbeat(sender, **kwargs) -> None:
    """A worker serving `bots` keeps its Host row alive from a thread of its main process.

    Not a task: a pool busy with slow starts would delay it past the lease (bots.lifecycle.hosts).
    """
    global _heartbeat
    if dispatch.SHARED_QUEUE in sender.app.amqp.queues.consume_from and _heartbeat is None:
        _heartbeat = hosts.Heartbeat().start()


def stop_host_heartbeat(sender=None, **kwargs) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()


@shared_task(name="bots.tasks.reconcile_all")
def reconcile_all() -> dict:
    return reconcile.reconcile_all()


@shared_task(name="bots.tasks.reconcile_host")
def reconcile_host(host: str | None = None) -> dict:
    return reconcile.reconcile_host(host)


@shared_task(name="bots.tasks.reconcile_bot")
def reconcile_bot(bot_id: int) -> str:
    return reconcile.reconcile_bot(bot_id)


@shared_task(name="bots.tasks.stop_bot")
def stop_bot(bot_id: int) -> str:
    """Stop a bot's process. It never deletes on its own say: only a bot an operator deleted
    (Bot.delete_requested, set by lifecycle.request_delete) goes once stopped."""
    bot = Bot.objects.filter(pk=bot_id).first()
    if bot is not None and dispatch.owned_elsewhere(bot):
        dispatch.send("bots.tasks.stop_bot", [bot_id], dispatch.queue_for(bot))
        return Outcome.REROUTED
    return stop.stop_bot(bot_id)


@shared_task(name="bots.tasks.restart_bot")
def restart_bot(bot_id: int, pid: int | None) -> str:
    return transitions.restart_bot(bot_id, pid)


@shared_task(name="bots.tasks.start_move")
def start_move(bot_id: int) -> str:
    return drain.start_move(bot_id)


@shared_task(name="bots.tasks.finish_move")
def finish_move(bot_id: int, pid: int) -> str:
    return drain.finish_move(bot_id, pid)
