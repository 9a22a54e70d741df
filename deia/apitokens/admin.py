"""API tokens in the admin: created with the key shown once, revoked with an action."""

from __future__ import annotations

from django.contrib import admin, messages
from django.template.response import TemplateResponse

from deia.admin_audit import AuditedAdminMixin
from deia.apitokens.models import ApiToken
from deia.apitokens.tokens import create_token, revoke_token


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "state", "created_at", "expires_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at", "expires_at")
    list_select_related = ("user",)
    search_fields = ("prefix", "name", "user__username")
    ordering = ("-created_at", "-id")
    actions = ["revoke"]
    # create_token and revoke_token write the audit rows themselves.
    audit_admin_changes = False
    audit_admin_deletions = False

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("user", "name", "expires_at")
        return ("prefix", "user", "name", "state", "created_at", "expires_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.get_fields(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        # Revoked, never deleted: the list keeps who had which prefix and when it was revoked.
        return False

    def save_model(self, request, obj: ApiToken, form, change: bool) -> None:
        if change:
            return  # nothing on an existing token is editable
        token, key = create_token(obj.user, name=obj.name, expires_at=obj.expires_at, by=request.user, request=request)
        obj.pk, obj.prefix, obj.created_at = token.pk, token.prefix, token.created_at
        request.new_api_key = key

    def response_add(self, request, obj: ApiToken, post_url_continue=None):
        """Show the key once, in this response only.

        The message is rendered by the page below within this request, so the messages
        framework never stores it (no cookie, no session row); the next page cannot show it.
        """
        key = request.new_api_key
        self.message_user(
            request,
            f"API token {obj.prefix} created for {obj.user}: {key} — copy it now, it is never shown again.",
            messages.WARNING,
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "API token created",
            "opts": self.opts,
            "token": obj,
        }
        # The admin marks its views never_cache (no-store): the page is not kept either.
        return TemplateResponse(request, "admin/apitokens/apitoken/created.html", context)

    @admin.action(description="Revoke selected API tokens", permissions=["change"])
    def revoke(self, request, queryset) -> None:
        tokens = list(queryset.select_related("user"))
        revoked = sum(revoke_token(token, by=request.user, request=request) for token in tokens)
        skipped = len(tokens) - revoked
        self.message_user(request, f"Revoked {revoked} token(s); {skipped} already revoked.", messages.SUCCESS)
