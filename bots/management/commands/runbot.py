"""`manage.py runbot <bot id or slug> --port N`: run one bot's process until SIGTERM."""

from __future__ import annotations

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve one bot's /health, /chat and /metrics on BOT_BIND_HOST:PORT until SIGTERM."
    requires_system_checks: list[str] = []  # start-up time matters; `manage.py check` runs elsewhere

    def add_arguments(self, parser) -> None:
        parser.add_argument("bot", help="the bot's id or slug")
        parser.add_argument("--port", type=int, default=None, help="port to listen on (default: the bot's port)")

    def handle(self, *args, **options) -> None:
        from bots.runner.server import run

        code = run(str(options["bot"]), options["port"])
        if code:
            raise SystemExit(code)
