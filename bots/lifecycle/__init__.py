"""Bot lifecycle: the only code that writes a bot's observed status.

Operators (admin, API, botctl) call request_start / request_stop / request_restart /
request_delete: they set the desired state under the row lock, write one audit row and
enqueue a reconcile after the commit. Celery tasks (bots.tasks) run the transitions in
bots.lifecycle.transitions on the worker of the host that holds the process.

Status transitions: the table in bots.lifecycle.machine (TRANSITIONS), the only one. Every
change of Bot.status goes through machine.move(), which refuses what the table does not
allow. The admin shows the table on each bot's page; docs/ARCHITECTURE.md prints it.

A start or a stop is one transition, audited with its outcome. Audit actions:
    operator requests (actor = admin user + IP, API token owner, cli:<unix user>):
        bot.start, bot.stop, bot.restart, bot.delete, bot.start_refused
    the lifecycle's own transitions (actor "reconcile", details.host = the worker's host;
    "shutdown" for botctl shutdown-host):
        bot.started, bot.restarted (after a crash or an operator restart; only the former
        adds to Bot.restart_count and deia_bot_restarts_total), bot.start_error,
        bot.crash, bot.adopted, bot.stopped, bot.deleted,
        bot.stray_killed / bot.orphan_killed (a runner its bot does not own / whose row is gone),
        bot.rescheduled (moved to another host: its host was lost, or a drain), bot.fenced
    hosts (bots.lifecycle.hosts, drain): host.joined, host.lost, host.rejoined,
        host.drain_requested, host.drained, host.undrained, host.forgotten

The failure that reaches BOT_MAX_START_RETRIES is still one row, its bot.start_error or
bot.crash, with details {"status": "error", "gave_up_after": N}.

start_failures counts failures in a row (failed starts and crashes) since the last
BOT_BACKOFF_RESET seconds of healthy running or the last operator start; the delay before
attempt n+1 is min(BOT_BACKOFF_BASE * 2**(n-1), BOT_BACKOFF_CAP).
"""

from __future__ import annotations

from bots.lifecycle.requests import request_delete, request_restart, request_start, request_stop
from bots.lifecycle.state import StartRefused, backoff

__all__ = ["StartRefused", "backoff", "request_delete", "request_restart", "request_start", "request_stop"]
