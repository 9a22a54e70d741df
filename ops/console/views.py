"""The admin index is the System Overview; the model list has its own page (admin/models/).

Both are wrapped by admin.site.admin_view in ops/urls.py: signed-in staff only, others go
to the admin's sign-in page.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache

from ops.console import overview

# The Operations page's permission: the figures say as much about the system as it does.
VIEW = "ops.view_operations"


@never_cache
def overview_view(request: HttpRequest) -> HttpResponse:
    context = {**admin.site.each_context(request), "title": "System Overview", "subtitle": None}
    if not request.user.has_perm(VIEW):
        context.update(app_list=admin.site.get_app_list(request), allowed=False)
        return TemplateResponse(request, "admin/console/overview.html", context)
    figures = overview.cached()
    context.update(
        allowed=True,
        tiles=[*overview.bot_tiles(request.user), *figures.tiles],
        charts=figures.charts,
        problems=figures.problems,
        source_name=figures.source_name,
        source_error=figures.source_error,
        computed_at=figures.at,
        cache_seconds=overview.CACHE_SECONDS,
    )
    return TemplateResponse(request, "admin/console/overview.html", context)


def models_view(request: HttpRequest) -> HttpResponse:
    """Django's admin index (the list of models), moved off the front page."""
    return admin.site.index(request, extra_context={"title": "Models"})
