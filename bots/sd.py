"""Prometheus HTTP service discovery of running bots (http_sd_configs)."""

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
        {"targets": [bot.address], "labels": {"bot": bot.slug, "bot_id": str(bot.pk)}}
        for bot in Bot.objects.running().exclude(port=None).only("slug", "port", "host", "advertise_host")
    ]
    return JsonResponse(groups, safe=False)
