"""Prometheus HTTP service discovery of running bots (http_sd_configs).

Each bot is listed at its current host's address, with a `host` label (the name of the
host whose worker runs it): every series scraped from the bot carries it, so Alertmanager
can fold a lost host's per-bot alerts into that host's one DeiaHostLost page.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from bots.models import Bot
from deia.proxies import forbidden, metrics_allowed


@never_cache
@require_GET
def targets(request: HttpRequest) -> JsonResponse:
    if not metrics_allowed(request):
        return forbidden()
    groups = [
        {"targets": [bot.address], "labels": {"bot": bot.slug, "bot_id": str(bot.pk), "host": bot.host}}
        for bot in Bot.objects.running().exclude(port=None).only("slug", "port", "host", "advertise_host")
    ]
    return JsonResponse(groups, safe=False)
