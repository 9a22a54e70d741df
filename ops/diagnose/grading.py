"""How diagnose grades a finding: a level, the value measured, the threshold, the next step."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import IntEnum

from deia.redact import redact


class Level(IntEnum):
    OK = 0
    WARN = 1
    CRIT = 2


@dataclass
class Check:
    name: str
    level: Level
    value: str
    threshold: str = ""
    next_step: str = ""

    def __post_init__(self) -> None:
        # Reasons quote exceptions, and those may quote a URL with its password.
        self.value = redact(self.value)

    def line(self) -> str:
        text = f"{self.level.name:<4} {self.name:<20} {self.value}"
        if self.threshold:
            text += f" (threshold: {self.threshold})"
        if self.level != Level.OK and self.next_step:
            text += f" -> next: {self.next_step}"
        return text

    def as_dict(self) -> dict:
        return {**asdict(self), "level": self.level.name}


def ok(name: str, value: str, threshold: str = "") -> Check:
    return Check(name, Level.OK, value, threshold)


def graded(name: str, value: float, warn: float, crit: float, text: str, step: str, *, below: bool) -> Check:
    """A level from a number: `below` means smaller is worse (free disk), else larger is."""
    bad = (lambda limit: value < limit) if below else (lambda limit: value > limit)
    sign = "<" if below else ">"
    threshold = f"warn {sign} {warn:g}, crit {sign} {crit:g}"
    level = Level.CRIT if bad(crit) else Level.WARN if bad(warn) else Level.OK
    return Check(name, level, text, threshold, step)
