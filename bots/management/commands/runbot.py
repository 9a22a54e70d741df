"""`manage.py runbot <bot id or slug> --port N`: run one bot's process until SIGTERM."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve one bot's /health, /chat and /metrics on BOT_BIND_HOST:PORT until SIGTERM."
    requires_system_checks: list[str] = []  # start-up time matters; `manage.py check` runs elsewhere

    def add_arguments(self, parser) -> None:
        parser.add_argument("bot", help="the bot's id or slug")
        parser.add_argument("--port", type=int, default=None, help="port to listen on (default: the bot's port)")

    def handle(self, *args, **options) -> None:
        multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if multiproc_dir:
            # A runner serves its own registry. prometheus_client picked multiprocess
            # values at import (inherited from a gunicorn or worker environment) and wrote
            # files under this pid that the web app would read: remove them, start again.
            for path in Path(multiproc_dir).glob(f"*_{os.getpid()}.db"):
                path.unlink(missing_ok=True)
            env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
            os.execve(sys.executable, [sys.executable, *sys.argv], env)  # noqa: S606 - same program, same args

        from bots.runner.server import run

        code = run(str(options["bot"]), options["port"])
        if code:
            raise SystemExit(code)
