"""The admin of the project's own records, and the base class of every read-only admin."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from deia.adapters.django import changelist_queryset
from deia.audit import audit
from deia.audit_actions import Action
from deia.audit_export import ExportForm, streamed_csv
from deia.models import AuditLog, RuntimeFlag
from deia.paginator import EstimatedCountPaginator

EXPORT_PERMISSION = "deia.export_auditlog"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records that nobody edits, superusers included."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "severity", "actor", "action", "target", "ip")
    list_filter = ("severity", "action", "actor", "created_at")
    search_fields = ("action", "actor", "target")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    fields = ("created_at", "severity", "actor", "user", "action", "target", "details", "ip")
    readonly_fields = fields

    paginator = EstimatedCountPaginator

    def get_actions(self, request):
        # Not even the bulk "delete selected" action.
        return {}

    def has_export_permission(self, request) -> bool:
        return self.has_view_permission(request) and request.user.has_perm(EXPORT_PERMISSION)

    def get_urls(self):
        export = self.admin_site.admin_view(require_POST(self.export_view))
        return [path("export/", export, name="deia_auditlog_export"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        today = timezone.now().date()
        extra_context = {
            **(extra_context or {}),
            "can_export": self.has_export_permission(request),
            "export_query": request.GET.urlencode(),
            "export_start": today - timedelta(days=30),
            "export_end": today,
        }
        return super().changelist_view(request, extra_context)

    def export_view(self, request):
        """The rows of the changelist (its filters, search and date hierarchy) in a date range, as CSV.

        The export is audited first (who, which range and filters); its own row is left out of the file.
        """
        if not self.has_export_permission(request):
            raise PermissionDenied
        form = ExportForm(request.POST)
        query = request.POST.get("query", "")
        back = HttpResponseRedirect(f"{reverse('admin:deia_auditlog_changelist')}?{query}")
        if not form.is_valid():
            self.message_user(request, f"Nothing exported: {form.problem()}.", messages.ERROR)
            return back
        start, end = form.bounds()
        try:
            rows = changelist_queryset(self, request, query)
        except IncorrectLookupParameters:
            self.message_user(request, f"Nothing exported: the list's filters are not valid ({query}).", messages.ERROR)
            return back
        first, last = form.cleaned_data["start"], form.cleaned_data["end"]
        row = audit(
            Action.AUDIT_EXPORT,
            request=request,
            target=f"audit log {first}..{last}",
            details={"from": str(first), "to": str(last), "filters": query},
        )
        rows = rows.filter(created_at__gte=start, created_at__lt=end).exclude(pk=row.pk)
        response = StreamingHttpResponse(streamed_csv(request, rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="audit-log_{first}_{last}.csv"'
        return response


@admin.register(RuntimeFlag)
class RuntimeFlagAdmin(ReadOnlyAdmin):
    list_display = ("name", "enabled", "updated_by", "updated_at")
