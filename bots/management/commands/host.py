"""Hosts of the fleet: list, drain, undrain, forget (audited as cli:<unix user>)."""

from __future__ import annotations

import getpass

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bots.lifecycle import hosts
from bots.models import Bot, Host, db_now


class Command(BaseCommand):
    help = "List the fleet's hosts; drain, undrain or forget one."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="one line per host: state, bots, capacity, last seen, labels")
        for name, text in (
            ("drain", "move the host's bots elsewhere, one by one; it takes no new bot"),
            ("undrain", "the host takes new bots again"),
            ("forget", "remove a lost host that holds no bot"),
        ):
            sub.add_parser(name, help=text).add_argument("name")

    def handle(self, *args, action: str, **options) -> None:
        if action == "list":
            now, loads = db_now(), Bot.objects.per_host()
            for host in Host.objects.order_by("name"):
                state = host.state_at(now, settings.HOST_LEASE_SECONDS)
                seen = round((now - host.last_seen).total_seconds(), 1)
                self.stdout.write(
                    f"{host.name:<24} {state:<8} bots={loads.get(host.name, 0)}/{host.capacity} "
                    f"address={host.address or '-'} seen={seen}s ago labels={host.labels or '-'} version={host.version}"
                )
            return
        name, actor = options["name"], f"cli:{getpass.getuser()}"
        verb = {"drain": hosts.drain, "undrain": hosts.undrain, "forget": hosts.forget}[action]
        try:
            changed = verb(name, actor=actor)
        except hosts.HostError as exc:
            raise CommandError(str(exc)) from exc
        if changed is False:
            self.stdout.write(f"host {name}: {'already draining' if action == 'drain' else 'was not draining'}")
        else:
            self.stdout.write(f"host {name}: {action} done")
