"""Shared fixtures of the lifecycle suites (registered in tests/conftest.py)."""

from __future__ import annotations
