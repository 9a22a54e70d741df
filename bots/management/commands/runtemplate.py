"""`manage.py runtemplate`: this host's runner template, which forks bot runners (bots/runner/template.py).

Started by the bots worker (bots.lifecycle.template); run by hand only to look at it.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Pre-load the runner once and fork a runner per bot start, on a Unix socket under DEIA_VAR_DIR."
    requires_system_checks: list[str] = []

    def handle(self, *args, **options) -> None:
        from bots.lifecycle.process import TEMPLATE_ID, runner_tag
        from bots.lifecycle.template import socket_path
        from bots.runner.template import serve

        code = serve(socket_path(), runner_tag(TEMPLATE_ID))
        if code:
            raise SystemExit(code)
