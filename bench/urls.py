from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from bots.models import Bot


def bare(request: HttpRequest) -> JsonResponse:
    """The floor: a plain Django view reading 10 rows, no framework on top."""
    rows = list(Bot.objects.order_by("id").values("id", "name", "status")[:10])
    return JsonResponse({"results": rows})


urlpatterns = [path("bench/bare", bare), path("", include("ops.urls"))]
