"""Placement: which host starts a bot. Called under fleet_lock() with the bot's row locked.

A bot is placed on an alive, non-draining host with free capacity (its worker's
HOST_MAX_BOTS, counted as the bots placed there), whose labels include the bot's
required_label, least loaded first; the fleet never holds more than MAX_BOTS placed bots.
Placing sets Bot.host and bumps Bot.generation; the start then runs on that host's queue.
Placements and claims share fleet_lock, so two workers never start one bot.

With no Host row at all (a process that is no registered worker: tests, tools, an
installation whose workers predate hosts) the claiming worker starts the bot itself, as
before hosts existed.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from bots import metrics
from bots.lifecycle.state import record
from bots.models import Bot, Host, HostState, Status, db_now
from deia.audit_actions import Action

HOST_LOST, DRAIN = "host_lost", "drain"


@dataclass(frozen=True)
class Fleet:
    """The hosts as one placement pass sees them: states and loads, updated as it places."""

    hosts: dict[str, Host]
    states: dict[str, HostState]
    loads: dict[str, int]

    @classmethod
    def read(cls) -> Fleet:
        now = db_now()
        hosts = {h.name: h for h in Host.objects.all()}
        states = {name: h.state_at(now, settings.HOST_LEASE_SECONDS) for name, h in hosts.items()}
        return cls(hosts, states, Bot.objects.per_host())

    @property
    def legacy(self) -> bool:
        """No host registered: whoever claims the start runs it (one host, as before hosts)."""
        return not self.hosts

    def accepts(self, name: str) -> bool:
        """The host may hold a bot now (alive, not draining): a placement there stands."""
        return self.states.get(name) == HostState.ALIVE

    def placed(self) -> int:
        """Bots placed on hosts that are not lost (what MAX_BOTS limits)."""
        return sum(n for name, n in self.loads.items() if self.states.get(name) != HostState.LOST)

    def choose(self, bot: Bot) -> Host | None:
        """The least loaded alive, non-draining host with room that has the bot's label."""
        fits = [
            h
            for name, h in self.hosts.items()
            if self.accepts(name)
            and self.loads.get(name, 0) < h.capacity
            and (not bot.required_label or bot.required_label in h.label_set())
        ]
        return min(fits, key=lambda h: (self.loads.get(h.name, 0), h.name), default=None)

    def refusal(self, bot: Bot) -> str:
        label = f" with label {bot.required_label!r}" if bot.required_label else ""
        return f"waiting: no alive, non-draining host{label} has room (HOST_MAX_BOTS)"


def place(bot: Bot, fleet: Fleet) -> Host | str:
    """Place the locked `bot`: its new host (saved, generation bumped, audited if it moved), or why not.

    A bot coming from a lost host is audited bot.rescheduled (reason host_lost).
    """
    counted = bool(bot.host) and fleet.states.get(bot.host) != HostState.LOST
    if fleet.placed() - counted >= settings.MAX_BOTS:
        return f"waiting: MAX_BOTS={settings.MAX_BOTS} bots are placed already"
    chosen = fleet.choose(bot)
    if chosen is None:
        return fleet.refusal(bot)
    moved_from = bot.host if bot.status == Status.LOST else ""
    assign(bot, chosen.name, fleet)
    if moved_from:
        reschedule_record(bot, moved_from, HOST_LOST)
    return chosen


def assign(bot: Bot, name: str, fleet: Fleet) -> None:
    """Bot.host = name and a new generation, saved; the pass's loads follow."""
    if fleet.loads.get(bot.host):
        fleet.loads[bot.host] -= 1
    bot.host = name
    bot.generation += 1
    Bot.objects.filter(pk=bot.pk).update(host=name, generation=bot.generation)
    fleet.loads[name] = fleet.loads.get(name, 0) + 1


def reschedule_record(bot: Bot, moved_from: str, reason: str) -> None:
    details = {"from": moved_from, "to": bot.host, "reason": reason, "generation": bot.generation}
    record(bot, Action.BOT_RESCHEDULED, details=details)
    metrics.RESCHEDULES.inc(reason=reason)
