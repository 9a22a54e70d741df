"""Every change made through the admin is audited, for every model registered there.

Django's own LogEntry is per-site and lost with the user; the audit log is the record
operators query. The admin calls log_addition / log_change / log_deletions for each add,
edit and delete (bulk deletes included); this mixin writes one audit row for each,
through the one audit helper. Models whose changes their own code audits (a bot's
deletion goes through the lifecycle) opt out with `audit_admin_changes = False` or
`audit_admin_deletions = False`.

An edit's row records, as NetBox's change log does, the old and new value of each field
it changed: {"changes": {field: {"old": ..., "new": ...}}}, secrets masked. The old values
are read when the admin loads the object (get_object, before its form changes it: the
change form and the user's password form both load it there), or from the database just
before saving when something else loaded it (a list_editable changelist). The fields are
those the form changed (form.changed_data, as in Django's own change message): a value the
form merely re-rounds on save (a timestamp's microseconds) is not a change someone made.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.core.serializers.json import DjangoJSONEncoder

from deia.adapters.django import mix_into_every_model_admin
from deia.audit import audit
from deia.audit_actions import admin_subject
from deia.redact import MASK, is_secret_name, redact

# A long text (a system prompt) is cut in the audit row: the row says what changed, not a copy.
MAX_TEXT = 1000


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


class _Encoder(DjangoJSONEncoder):
    def default(self, o: Any) -> Any:
        try:
            return super().default(o)
        except TypeError:  # a file, a range...: its text
            return str(o)


def field_values(obj) -> dict[str, Any]:
    """The values of obj's editable fields as JSON stores them (relations by primary key)."""
    values: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if field.editable:
            values[field.name] = field.value_from_object(obj)
    for field in obj._meta.many_to_many:
        if field.editable:
            values[field.name] = sorted(related.pk for related in field.value_from_object(obj))
    return json.loads(json.dumps(values, cls=_Encoder))


def _shown(name: str, value: Any) -> Any:
    if is_secret_name(name):
        return MASK
    return redact(value)[:MAX_TEXT] if isinstance(value, str) else value


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{field: {"old": ..., "new": ...}} for each field whose value differs, secrets masked."""
    return {
        name: {"old": _shown(name, before.get(name)), "new": _shown(name, value)}
        for name, value in after.items()
        if before.get(name) != value
    }


def _snapshot_key(obj) -> str:
    return f"{obj._meta.label_lower}:{obj.pk}"


class AuditedAdminMixin:
    audit_admin_changes = True
    audit_admin_deletions = True

    def _audit_action(self, obj, verb: str) -> str:
        return f"{admin_subject(obj._meta.label_lower)}.{verb}"

    def _audit_remember(self, request, obj) -> None:
        # Our own attribute on the request: the admin's hooks share nothing else per request.
        if not hasattr(request, "audit_before"):
            request.audit_before = {}
        request.audit_before.setdefault(_snapshot_key(obj), field_values(obj))

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None and request.method == "POST" and self.audit_admin_changes:
            self._audit_remember(request, obj)
        return obj

    def save_model(self, request, obj, form, change):
        if change and self.audit_admin_changes and _snapshot_key(obj) not in getattr(request, "audit_before", {}):
            stored = type(obj)._base_manager.filter(pk=obj.pk).first()
            if stored is not None:
                self._audit_remember(request, stored)
        return super().save_model(request, obj, form, change)

    def construct_change_message(self, request, form, formsets, add=False):
        request.audit_form_changed = set(form.changed_data)
        return super().construct_change_message(request, form, formsets, add)

    def log_addition(self, request, obj, message):
        if self.audit_admin_changes:
            audit(self._audit_action(obj, "create"), request=request, target=audit_target(obj))
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        if self.audit_admin_changes:
            details: dict[str, Any] = {"fields": changed_fields(message)}
            before = getattr(request, "audit_before", {}).get(_snapshot_key(obj))
            if before is not None:
                after = field_values(obj)
                changed = getattr(request, "audit_form_changed", after.keys())
                details["changes"] = changes(before, {name: after[name] for name in after if name in changed})
            audit(self._audit_action(obj, "update"), request=request, target=audit_target(obj), details=details)
        return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        if self.audit_admin_deletions:
            for obj in queryset:
                audit(self._audit_action(obj, "delete"), request=request, target=audit_target(obj))
        return super().log_deletions(request, queryset)


def audit_every_model_admin(site: admin.AdminSite = admin.site) -> None:
    """Give every registered ModelAdmin (ours and third-party apps') the audit mixin.

    Called from deia's ready(): the admin app's (autodiscover) has run by then, so every
    registration is there."""
    mix_into_every_model_admin(AuditedAdminMixin, "Audited", site)
