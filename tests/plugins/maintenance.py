"""Shared fixtures of the maintenance suites (registered in tests/conftest.py)."""

from __future__ import annotations
