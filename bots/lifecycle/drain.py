"""Draining: a host's bots move to other hosts one by one, with no chat lost.

A move of one bot, from host A (draining) to host B:

1. reconcile_all (next_moves, under fleet_lock) picks one running bot of A when none of A's
   bots is moving, places it (bots.lifecycle.placement) and writes Bot.handover = {"to": B};
   the move goes to B's queue.
2. B (start_move) picks a port, takes the next generation as handover_generation, spawns the
   new runner with it and waits for its /health. Both runners' heartbeats are accepted: the
   old one's generation is the bot's, the new one's is the handover's.
3. The switch, under the row lock: the bot's process fields become the new runner's (the
   relay follows at its next chat: address, secret and generation), the old runner becomes
   the handover (its generation stays accepted), bot.rescheduled is audited (reason drain).
4. A (finish_move) stops the old runner with its normal graceful stop: SIGTERM, it finishes
   the chats it holds within BOT_STOP_GRACE, then exits; the handover is cleared.

When the last bot has left, host.drained is audited; the host takes no placement until undrained.
Both hosts' sweeps leave the handover runner alone (bots.lifecycle.stop.kill_strays).
"""

from __future__ import annotations

import logging
import secrets
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bots import metrics
from bots.lifecycle import dispatch, template
from bots.lifecycle.placement import DRAIN, Fleet, reschedule_record
from bots.lifecycle.process import is_runner, kill_group, pick_port, reap_children, terminate, wait_ready
from bots.lifecycle.state import SYSTEM_ACTOR, fleet_lock, lock_bot, taken_ports
from bots.models import Bot, DesiredState, Host, HostState, Status
from deia.audit import audit
from deia.audit_actions import Action
from deia.models import AuditLog

log = logging.getLogger("deia.lifecycle")

# The relay reads a bot's address when a chat begins: a chat that read the old one just
# before the switch reaches the old runner before it stops taking new connections.
SWITCH_SETTLE_SECONDS = 1.0


def next_moves() -> int:
    """One move per draining host at a time; host.drained once its last bot has left. Returns moves begun."""
    begun: list[Bot] = []
    with transaction.atomic():
        fleet_lock()
        fleet = Fleet.read()
        for name, state in fleet.states.items():
            if state != HostState.DRAINING:
                continue
            held = Bot.objects.filter(host=name).exclude(status=Status.LOST)
            # A move whose destination was lost before it began is given up.
            for stuck in held.exclude(handover={}).filter(handover__generation__isnull=True):
                if fleet.states.get(stuck.handover.get("to")) == HostState.LOST:
                    Bot.objects.filter(pk=stuck.pk).update(handover={}, handover_generation=None)
            if not held.exists() and not Bot.objects.filter(handover__host=name).exists():
                _audit_drained_once(fleet.hosts[name])
                continue
            if held.exclude(handover={}).exists() or Bot.objects.filter(handover__host=name).exists():
                continue  # one bot at a time
            bot = held.filter(status=Status.RUNNING, desired_state=DesiredState.RUNNING).order_by("pk").first()
            if bot is None:
                continue
            bot = lock_bot(bot.pk)
            chosen = fleet.choose(bot)
            if chosen is None:
                log.warning("drain: no host has room", extra={"host": name, "bot": bot.slug})
                continue
            bot.handover = {"from": name, "to": chosen.name}
            bot.save(update_fields=["handover", "updated_at"])
            fleet.loads[chosen.name] = fleet.loads.get(chosen.name, 0) + 1
            begun.append(bot)
    for bot in begun:
        dispatch.send("bots.tasks.start_move", [bot.pk], dispatch.host_queue(bot.handover["to"]))
    return len(begun)


def _audit_drained_once(host: Host) -> None:
    last = AuditLog.objects.filter(target=host.name, action__in=[Action.HOST_DRAIN_REQUESTED, Action.HOST_DRAINED])
    latest = last.order_by("-id").values_list("action", flat=True).first()
    if latest != Action.HOST_DRAINED:
        audit(Action.HOST_DRAINED, actor=SYSTEM_ACTOR, target=host.name, details={"since": str(host.draining_since)})


def start_move(bot_id: int) -> str:
    """On the destination host: start the new runner, wait for its health, switch, hand the old one back."""
    reap_children()
    with transaction.atomic():
        fleet_lock()
        bot = lock_bot(bot_id)
        if bot is None or bot.status != Status.RUNNING or bot.handover.get("to") != settings.HOSTNAME:
            return "superseded"
        if bot.handover.get("generation"):
            return "moving"  # a redelivered task: the first one is at work
        port = pick_port(taken_ports())
        if port is None:
            _abandon(bot, f"no free port in BOT_PORT_RANGE {settings.BOT_PORT_RANGE}")
            return "error"
        generation = bot.generation + 1
        secret = secrets.token_urlsafe(32)
        bot.handover |= {"host": settings.HOSTNAME, "port": port, "generation": generation}
        bot.handover_generation = generation
        bot.save(update_fields=["handover", "handover_generation", "updated_at"])
    began = time.monotonic()
    try:
        spawned = template.spawn(bot, port, secret, generation)
    except OSError as exc:
        _abandon_locked(bot_id, generation, f"cannot spawn the runner: {exc}")
        return "error"
    with transaction.atomic():
        bot = lock_bot(bot_id)
        if bot is None or bot.handover_generation != generation:
            terminate(spawned.pid, 0)
            return "superseded"
        bot.handover["pid"] = spawned.pid
        bot.save(update_fields=["handover", "updated_at"])
    error = wait_ready(spawned, bot_id, port, began + settings.BOT_START_TIMEOUT)
    if error:
        kill_group(spawned.pid)
        reap_children()
        _abandon_locked(bot_id, generation, error)
        return "error"
    return _switch(bot_id, generation, spawned.pid, port, secret, time.monotonic() - began)


def _switch(bot_id: int, generation: int, pid: int, port: int, secret: str, seconds: float) -> str:
    with transaction.atomic():
        bot = lock_bot(bot_id)
        if bot is None or bot.status != Status.RUNNING or bot.handover_generation != generation:
            terminate(pid, 0)
            if bot is not None and bot.handover_generation == generation:
                _abandon(bot, f"the bot is {bot.status} now")
            return "superseded"
        old = {"pid": bot.pid, "host": bot.host, "port": bot.port, "generation": bot.generation}
        moved_from = bot.host
        bot.pid, bot.port, bot.host = pid, port, settings.HOSTNAME
        bot.advertise_host, bot.chat_secret, bot.generation = settings.BOT_ADVERTISE_HOST, secret, generation
        bot.started_at = bot.last_heartbeat = timezone.now()
        bot.startup_seconds = round(seconds, 4)
        # The old runner finishes its chats under its own generation, still accepted.
        bot.handover, bot.handover_generation = {**old, "stopping": True}, old["generation"]
        fields = ["pid", "port", "host", "advertise_host", "chat_secret", "generation", "started_at"]
        bot.save(update_fields=[*fields, "last_heartbeat", "startup_seconds", "handover", "handover_generation"])
        reschedule_record(bot, moved_from, DRAIN)
        metrics.STARTUP_SECONDS.observe(seconds)
        transaction.on_commit(
            lambda: dispatch.send(
                "bots.tasks.finish_move",
                [bot_id, old["pid"]],
                dispatch.host_queue(old["host"]),
                countdown=SWITCH_SETTLE_SECONDS,
            )
        )
    return "moved"


def finish_move(bot_id: int, pid: int) -> str:
    """On the host the bot left: the old runner's graceful stop, then the handover is over."""
    reap_children()
    if pid and is_runner(pid, bot_id):
        terminate(pid, settings.BOT_STOP_GRACE)  # SIGTERM: it finishes the chats in hand
    with transaction.atomic():
        bot = lock_bot(bot_id)
        if bot is not None and bot.handover.get("pid") == pid and bot.handover.get("stopping"):
            bot.handover, bot.handover_generation = {}, None
            bot.save(update_fields=["handover", "handover_generation", "updated_at"])
    return "finished"


def _abandon_locked(bot_id: int, generation: int, error: str) -> None:
    with transaction.atomic():
        bot = lock_bot(bot_id)
        if bot is not None and bot.handover_generation == generation:
            _abandon(bot, error)


def _abandon(bot: Bot, error: str) -> None:
    """The move failed: the bot stays where it runs; the next reconcile pass tries again."""
    log.warning("drain move failed", extra={"bot": bot.slug, "error": error, "to": settings.HOSTNAME})
    bot.handover, bot.handover_generation = {}, None
    bot.save(update_fields=["handover", "handover_generation", "updated_at"])
