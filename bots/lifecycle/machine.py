"""The bot lifecycle as a state machine: the table of allowed transitions and the one writer of status.

Every change of Bot.status goes through move(), which refuses a change the table does not
allow (IllegalTransition) before anything is written. The table is also what the admin
shows on a bot's page and what docs/ARCHITECTURE.md prints (markdown_table()).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from bots.models import Bot, Status


class Event(StrEnum):
    """Why a bot's status changes; each event is a row of TRANSITIONS."""

    CLAIM = "claim"
    NO_PORT = "no port"
    STARTED = "started"
    ADOPTED = "adopted"
    START_FAILED = "start failed"
    CRASH = "crash"
    STOP = "stop"
    STOPPED = "stopped"
    HOST_LOST = "host lost"


class Outcome(StrEnum):
    """What a transition or a reconcile step did: returned by the tasks, so kept as plain strings."""

    STARTED = "started"
    ADOPTED = "adopted"
    CRASHED = "crashed"
    STOPPED = "stopped"
    ERROR = "error"  # a start failed (the bot is crashed, in error, or stopped if asked meanwhile)
    REFUSED = "refused"  # a start waits: MAX_BOTS or the freeze
    NOT_DUE = "not due"
    PORT_RACE = "port race"  # three claims in a row lost the unique port to other workers
    SUPERSEDED = "superseded"  # someone else changed the bot meanwhile; nothing done
    GONE = "gone"  # the bot's row no longer exists
    REROUTED = "rerouted"  # sent to the worker of the host that holds the process
    NOOP = "noop"
    STARTING = "starting"
    WAITING = "waiting"
    OK = "ok"
    ORPHANS_KILLED = "orphans_killed"  # a count in reconcile_host's summary
    FENCED = "fenced"  # this host was lost: its runners were killed before it rejoined


# LOST: its host was lost; it is started again elsewhere (placement), its old runner fenced.
STARTABLE = frozenset({Status.STOPPED, Status.CRASHED, Status.ERROR, Status.LOST})
FAILED = frozenset({Status.CRASHED, Status.ERROR})
# No process of ours to stop: desired stopped, the status simply becomes stopped.
SETTLEABLE = FAILED | {Status.LOST}


@dataclass(frozen=True)
class Transition:
    event: Event
    sources: frozenset[Status]
    targets: frozenset[Status]
    when: str


# The only changes of Bot.status there are. ERROR is a failure that reached BOT_MAX_START_RETRIES.
TRANSITIONS: tuple[Transition, ...] = (
    Transition(
        Event.CLAIM,
        STARTABLE,
        frozenset({Status.STARTING}),
        "a worker claims a due start on the host it is placed on (from error only after an operator's start)",
    ),
    Transition(Event.NO_PORT, STARTABLE, FAILED, "no free port in BOT_PORT_RANGE: a failed start"),
    Transition(Event.STARTED, frozenset({Status.STARTING}), frozenset({Status.RUNNING}), "the runner answers /health"),
    Transition(
        Event.ADOPTED,
        frozenset({Status.STARTING}),
        frozenset({Status.RUNNING}),
        "its start task was lost but its runner is healthy",
    ),
    Transition(
        Event.START_FAILED,
        frozenset({Status.STARTING}),
        FAILED | {Status.STOPPED},
        "the runner exited, was not ready in time or its worker was lost (stopped: a stop came meanwhile)",
    ),
    Transition(Event.CRASH, frozenset({Status.RUNNING}), FAILED, "its process is gone or its heartbeat is stale"),
    Transition(
        Event.HOST_LOST,
        frozenset({Status.STARTING, Status.RUNNING, Status.STOPPING}),
        frozenset({Status.LOST}),
        "its host was silent past HOST_LEASE_SECONDS: it is placed elsewhere, its old runner fenced",
    ),
    Transition(
        Event.STOP,
        frozenset({Status.STARTING, Status.RUNNING, Status.STOPPING}),
        frozenset({Status.STOPPING}),
        "a stop signals its process: SIGTERM, grace, SIGKILL of the group",
    ),
    Transition(
        Event.STOPPED,
        frozenset(Status),
        frozenset({Status.STOPPED}),
        "a stop saw its process exit or found none; or it is crashed, in error or lost and desired stopped",
    ),
)

# Status -> {next status: events that lead there}, derived from the table.
ALLOWED: dict[Status, dict[Status, tuple[Event, ...]]] = {
    source: {
        target: tuple(t.event for t in TRANSITIONS if source in t.sources and target in t.targets)
        for target in Status
        if any(source in t.sources and target in t.targets for t in TRANSITIONS)
    }
    for source in Status
}


class IllegalTransition(Exception):
    """A status change the table does not allow; nothing was written."""

    def __init__(self, bot: Bot, event: Event, target: Status) -> None:
        allowed = ", ".join(f"{s} ({'/'.join(e)})" for s, e in ALLOWED[Status(bot.status)].items())
        super().__init__(
            f"bot {bot.slug!r}: {event} may not take it from {bot.status} to {target}; from {bot.status}: {allowed}"
        )
        self.event, self.source, self.target = event, Status(bot.status), target


def allows(source: Status | str, event: Event, target: Status) -> bool:
    return event in ALLOWED[Status(source)].get(target, ())


def move(bot: Bot, event: Event, target: Status, fields: Iterable[str] = ()) -> None:
    """The one writer of Bot.status: check the table, then save status and `fields` of `bot`.

    Called under the bot's row lock (state.lock_bot), so bot.status is what the row holds.
    """
    if not allows(bot.status, event, target):
        raise IllegalTransition(bot, event, target)
    bot.status = target
    bot.save(update_fields=["status", *fields, "updated_at"])


def _names(statuses: frozenset[Status]) -> str:
    return ", ".join(s.value for s in Status if s in statuses)


def cells(transition: Transition) -> tuple[str, str, str, str]:
    """From, event, to, when: one row of the table as the admin and the docs show it."""
    t = transition
    return _names(t.sources), t.event.value, _names(t.targets), t.when


def markdown_table() -> str:
    """The table as docs/ARCHITECTURE.md prints it (a test holds the two equal)."""
    lines = ["| From | Event | To | When |", "| --- | --- | --- | --- |"]
    lines += ["| {} | {} | {} | {} |".format(*cells(t)) for t in TRANSITIONS]
    return "\n".join(lines)
