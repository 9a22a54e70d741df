"""The URL map of the whole site (ROOT_URLCONF). It names every app's views, so it lives in
the top layer, ops, which may use bots and deia."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from bots import sd
from ops import views as ops_views
from ops.console import pages
from ops.console import views as console_views

admin.site.site_header = "DEIA Bot Controller"
admin.site.site_title = "DEIA Bot Controller"
admin.site.index_title = "Operations console"

urlpatterns = [
    path("health", ops_views.health, name="health"),
    path("health/<str:check>", ops_views.health_check, name="health-check"),
    path("metrics", ops_views.metrics, name="metrics"),
    path("api/prometheus/targets", sd.targets, name="prometheus-targets"),
    path("admin/ops/capacity/", admin.site.admin_view(pages.capacity_view), name="ops-capacity"),
    # The admin's index is the System Overview; Django's list of models moves to admin/models/.
    path("admin/", admin.site.admin_view(console_views.overview_view), name="overview"),
    path("admin/models/", admin.site.admin_view(console_views.models_view), name="admin-models"),
    path("admin/", admin.site.urls),
    path("", include("bots.urls")),
]
