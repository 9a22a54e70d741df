from __future__ import annotations

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from deia.proxies import forbidden, metrics_allowed
from ops.health import CHECKS, run_checks
from ops.metrics import render_web_metrics


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches no dependency."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def health_check(request: HttpRequest, check: str) -> JsonResponse:
    if check == "ready":
        names = list(CHECKS)
    elif check in CHECKS:
        names = [check]
    else:
        return JsonResponse(
            {"error": "unknown check", "detail": f"choose one of: {', '.join([*CHECKS, 'ready'])}"},
            status=404,
        )
    results = run_checks(names)
    ok = all(r.ok for r in results)
    detail = health_details_allowed(request)
    body = {"status": "ok" if ok else "error", "checks": {r.name: r.as_dict(detail=detail) for r in results}}
    return JsonResponse(body, status=200 if ok else 503)


def health_details_allowed(request: HttpRequest) -> bool:
    """Error texts name hosts and users: for the metrics ACL's callers and staff only."""
    if metrics_allowed(request):
        return True
    try:
        user = request.user
        return bool(user.is_authenticated and user.is_staff and user.is_active)
    except DatabaseError:
        # /health/db with the database down: the session cannot be read, so no details.
        return False


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        return forbidden()
    body, content_type = render_web_metrics()
    return HttpResponse(body, content_type=content_type)
