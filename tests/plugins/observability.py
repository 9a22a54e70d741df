"""Shared fixtures of the observability suites (registered in tests/conftest.py)."""

from __future__ import annotations
