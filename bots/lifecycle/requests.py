"""Operator requests: set the desired state, audit who asked, enqueue the reconcile.

Called by the admin, the API and botctl. They never spawn or signal a process; the
worker of the right host does that when the reconcile task runs after the commit.
"""

from __future__ import annotations

from django.db import transaction

from bots.lifecycle import dispatch
from bots.lifecycle.state import StartRefused, fleet_lock, freeze_refusal, lock_bot, record, start_refusal
from bots.models import PROCESS_STATES, Bot, DesiredState, Status
from deia.audit_actions import Action


def _lock(bot: Bot) -> Bot:
    fleet_lock()
    fresh = lock_bot(bot.pk)
    if fresh is None:
        raise Bot.DoesNotExist(f"bot {bot.pk} no longer exists")
    return fresh


def request_start(bot: Bot, *, user=None, actor: str | None = None, ip: str | None = None, host: str | None = None):
    """Desired state -> running. Raises StartRefused (audited as bot.start_refused) over the limits.

    `host` asks for the first start on that host's worker (botctl start --host).
    """
    with transaction.atomic():
        bot = _lock(bot)
        already = bot.desired_state == DesiredState.RUNNING and bot.status != Status.ERROR
        refusal = None if already else start_refusal(bot)
        if refusal:
            # Written and committed before raising, so the refusal stays on record.
            record(bot, Action.BOT_START_REFUSED, actor=actor, user=user, ip=ip, details={"reason": refusal})
        else:
            _want_running(bot)
            if host and not already:
                # The operator's placement; the claim places it anew if that host cannot take it.
                Bot.objects.filter(pk=bot.pk).update(host=host)
                bot.host = host
            record(bot, Action.BOT_START, actor=actor, user=user, ip=ip, details={"already_running": already})
            queue = dispatch.host_queue(host) if host else dispatch.queue_for(bot)
            transaction.on_commit(lambda: dispatch.reconcile_soon(bot, queue=queue))
    if refusal:
        raise StartRefused(refusal)
    return bot


def _want_running(bot: Bot) -> None:
    bot.desired_state = DesiredState.RUNNING
    # An operator's start is a fresh chance: no backoff, and out of ERROR.
    bot.start_failures = 0
    bot.next_start_at = None
    bot.save(update_fields=["desired_state", "start_failures", "next_start_at", "updated_at"])


def request_stop(bot: Bot, *, user=None, actor: str | None = None, ip: str | None = None) -> Bot:
    """Desired state -> stopped; the owning host's worker stops the process."""
    with transaction.atomic():
        bot = _lock(bot)
        bot.desired_state = DesiredState.STOPPED
        bot.next_start_at = None
        bot.save(update_fields=["desired_state", "next_start_at", "updated_at"])
        record(bot, Action.BOT_STOP, actor=actor, user=user, ip=ip, details={"status": bot.status})
        transaction.on_commit(lambda: dispatch.reconcile_soon(bot))
    return bot


def request_restart(bot: Bot, *, user=None, actor: str | None = None, ip: str | None = None) -> Bot:
    """Restart a running bot in place (stop, then start on its host); start one that is not running."""
    with transaction.atomic():
        bot = _lock(bot)
        running = bot.status == Status.RUNNING and bot.desired_state == DesiredState.RUNNING
        # A running bot counts against no limit, but a freeze stops every launch, relaunches too.
        refusal = freeze_refusal() if running else start_refusal(bot)
        if refusal:
            record(bot, Action.BOT_START_REFUSED, actor=actor, user=user, ip=ip, details={"reason": refusal})
        else:
            _want_running(bot)
            record(bot, Action.BOT_RESTART, actor=actor, user=user, ip=ip, details={"pid": bot.pid})
            if running:
                args = [bot.pk, bot.pid]
                transaction.on_commit(
                    lambda: dispatch.send("bots.tasks.restart_bot", args, dispatch.host_queue(bot.host))
                )
            else:
                transaction.on_commit(lambda: dispatch.reconcile_soon(bot))
    if refusal:
        raise StartRefused(refusal)
    return bot


def request_delete(bot: Bot, *, user=None, actor: str | None = None, ip: str | None = None) -> bool:
    """Delete the bot; a bot with a process is marked, stopped, and deleted by the stop transition.

    The intent is the row's delete_requested, written here by the operator's request: no
    task argument can delete a bot, so a schedule cannot either.
    Returns True if the row is gone now, False if its process is being stopped first.
    """
    with transaction.atomic():
        bot = _lock(bot)
        bot.desired_state = DesiredState.STOPPED
        has_process = bot.status in PROCESS_STATES
        bot.delete_requested = has_process
        bot.save(update_fields=["desired_state", "delete_requested", "updated_at"])
        record(bot, Action.BOT_DELETE, actor=actor, user=user, ip=ip, details={"bot_id": bot.pk, "status": bot.status})
        if not has_process:
            bot.delete()
            return True
        queue = dispatch.queue_for(bot)
        transaction.on_commit(lambda: dispatch.send("bots.tasks.stop_bot", [bot.pk], queue))
    return False
