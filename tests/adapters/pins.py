"""The version of a library an adapter was written against: the pin in requirements.txt."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(distribution: str) -> str:
    for line in REQUIREMENTS.read_text().splitlines():
        match = re.match(r"\s*([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==([^\s#]+)", line)
        if match and _normal(match[1]) == _normal(distribution):
            return match[2]
    raise AssertionError(f"{distribution} is not pinned in requirements.txt")


def assert_installed_as_pinned(distribution: str) -> None:
    """An upgrade (the pin changed, or another version installed) fails here first: read
    the adapter's docstring, check what it relies on still holds, then change the pin."""
    assert version(distribution) == pinned(distribution), (
        f"{distribution} {version(distribution)} is installed, the adapter was pinned to {pinned(distribution)}"
    )
