"""Every change made through the admin is audited, for every model registered there.

Django's own LogEntry is per-site and lost with the user; the audit log is the record
operators query. The admin calls log_addition / log_change / log_deletions for each add,
edit and delete (bulk deletes included); this mixin writes one audit row for each,
through the one audit helper. Models whose changes their own code audits (a bot's
deletion goes through the lifecycle) opt out with `audit_admin_changes = False` or
`audit_admin_deletions = False`.
"""

from __future__ import annotations

import json

from django.contrib import admin

from deia.adapters.django import mix_into_every_model_admin
from deia.audit import audit


def audit_target(obj) -> str:
    """A name for the row (an API token's str() is its prefix and user, never its key)."""
    return f"{obj._meta.label_lower}:{obj.pk} {obj}"[:200]


def changed_fields(message) -> list[str]:
    """The field names out of the admin's change message (a JSON list or a list)."""
    if isinstance(message, str):
        try:
            message = json.loads(message or "[]")
        except ValueError:
            return []
    fields: list[str] = []
    for entry in message or []:
        for key in ("changed", "added", "deleted"):
            if isinstance(entry, dict) and key in entry:
                fields += [str(f) for f in entry[key].get("fields", [entry[key].get("name", "")])]
    return fields


class AuditedAdminMixin:
    audit_admin_changes = True
    audit_admin_deletions = True

    def log_addition(self, request, obj, message):
        if self.audit_admin_changes:
            audit(f"{obj._meta.label_lower}.create", request=request, target=audit_target(obj))
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        if self.audit_admin_changes:
            audit(
                f"{obj._meta.label_lower}.update",
                request=request,
                target=audit_target(obj),
                details={"fields": changed_fields(message)},
            )
        return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        if self.audit_admin_deletions:
            for obj in queryset:
                audit(f"{obj._meta.label_lower}.delete", request=request, target=audit_target(obj))
        return super().log_deletions(request, queryset)


def audit_every_model_admin(site: admin.AdminSite = admin.site) -> None:
    """Give every registered ModelAdmin (ours and third-party apps') the audit mixin.

    Called from deia's ready(): the admin app's (autodiscover) has run by then, so every
    registration is there."""
    mix_into_every_model_admin(AuditedAdminMixin, "Audited", site)
