"""Operator CLI for bots: list, start, stop, restart (audited as cli:<unix user>), shutdown-host."""

from __future__ import annotations

import getpass
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from bots import lifecycle
from bots.lifecycle import template
from bots.lifecycle.process import reap_children
from bots.lifecycle.reconcile import kill_orphans
from bots.lifecycle.stop import stop_bot
from bots.models import PROCESS_STATES, Bot


def shutdown_host() -> int:
    """Stop every bot process this host holds, and its runner template; desired states stay, so
    the next run restarts them."""
    ids = list(Bot.objects.filter(host=settings.HOSTNAME, status__in=PROCESS_STATES).values_list("pk", flat=True))

    def stop(bot_id: int) -> str:
        try:
            return stop_bot(bot_id, actor="shutdown")
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(stop, ids))
    reap_children()
    template.stop()  # and its runner template: leaving `make run` leaves no process behind
    return len(ids) + kill_orphans()


class Command(BaseCommand):
    help = "List, start, stop or restart bots; shutdown-host stops this host's bot processes."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="one line per bot")
        for name in ("start", "stop", "restart"):
            cmd = sub.add_parser(name, help=f"{name} a bot (by id or slug)")
            cmd.add_argument("bot")
            if name == "start":
                cmd.add_argument("--host", help="start it on this host's worker (DEIA_HOSTNAME)")
        sub.add_parser("shutdown-host", help="stop this host's bot processes now, keep desired states")

    def handle(self, *args, action: str, **options) -> None:
        if action == "list":
            for bot in Bot.objects.order_by("pk"):
                self.stdout.write(
                    f"{bot.pk:>4} {bot.slug:<24} {bot.status:<9} desired={bot.desired_state:<8} "
                    f"{bot.address or '-':<22} pid={bot.pid or '-'}"
                )
            return
        if action == "shutdown-host":
            count = shutdown_host()
            self.stdout.write(f"stopped {count} bot process(es) on {settings.HOSTNAME}")
            return
        bot = Bot.objects.by_ref(options["bot"])
        if bot is None:
            raise CommandError(f"no bot with id or slug {options['bot']!r}")
        actor = f"cli:{getpass.getuser()}"
        try:
            if action == "start":
                lifecycle.request_start(bot, actor=actor, host=options.get("host"))
            elif action == "stop":
                lifecycle.request_stop(bot, actor=actor)
            else:
                lifecycle.request_restart(bot, actor=actor)
        except lifecycle.StartRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{action} requested for {bot.slug} (status {bot.status})")
