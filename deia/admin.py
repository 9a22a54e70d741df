"""The admin of the project's own records, and the base class of every read-only admin."""

from __future__ import annotations

from django.contrib import admin

from deia.models import AuditLog, RuntimeFlag


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

    def get_actions(self, request):
        # Not even the bulk "delete selected" action.
        return {}


@admin.register(RuntimeFlag)
class RuntimeFlagAdmin(ReadOnlyAdmin):
    list_display = ("name", "enabled", "updated_by", "updated_at")
