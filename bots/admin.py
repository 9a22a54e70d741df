from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.timesince import timesince

from bots import lifecycle
from bots.models import Bot, ChatMessage, Status
from ops.admin import ReadOnlyAdmin
from ops.admin_audit import AuditedAdminMixin
from ops.audit import client_ip

RECENT_MESSAGES = 20

STATUS_COLOURS = {
    Status.RUNNING: "#2e7d32",
    Status.STARTING: "#1565c0",
    Status.STOPPING: "#1565c0",
    Status.STOPPED: "#616161",
    Status.CRASHED: "#e65100",
    Status.ERROR: "#c62828",
}


PROCESS_FIELDS = (
    "status",
    "pid",
    "host",
    "port",
    "advertise_host",
    "started_at",
    "last_heartbeat",
    "startup_seconds",
    "restart_count",
    "start_failures",
    "next_start_at",
    "last_error",
)


@admin.register(Bot)
class BotAdmin(AuditedAdminMixin, admin.ModelAdmin):
    # A deletion is audited by the lifecycle, which stops the process first.
    audit_admin_deletions = False
    list_display = (
        "name",
        "status_badge",
        "desired_state",
        "address",
        "uptime_display",
        "restart_count",
        "short_error",
    )
    list_filter = ("status", "desired_state", "backend")
    search_fields = ("name", "slug", "model_name", "host")
    prepopulated_fields = {"slug": ("name",)}
    # desired_state changes only through the actions, which audit and enqueue the reconcile.
    readonly_fields = ("desired_state", *PROCESS_FIELDS, "address", "uptime_display", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "slug", "backend", "model_name", "system_prompt", "desired_state")}),
        ("Process", {"fields": (*PROCESS_FIELDS[:6], "address", "uptime_display", *PROCESS_FIELDS[6:])}),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )
    actions = ("start_bots", "stop_bots", "restart_bots")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        if object_id and str(object_id).isdigit():
            # Served by the (bot, -created_at) index; the full history is in Chat messages.
            extra_context["recent_messages"] = list(
                ChatMessage.objects.filter(bot_id=int(object_id)).order_by("-created_at", "-id")[:RECENT_MESSAGES]
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def _apply(self, request, queryset, request_fn: Callable, verb: str) -> None:
        """Call the lifecycle for each selected bot and report each bot's result."""
        who = {"user": request.user, "ip": client_ip(request)}
        for bot in queryset:
            try:
                request_fn(bot, **who)
            except lifecycle.StartRefused as exc:
                self.message_user(request, f"{bot.name}: {verb} refused: {exc}", messages.ERROR)
            except Bot.DoesNotExist:
                self.message_user(request, f"{bot.name}: no longer exists", messages.ERROR)
            else:
                self.message_user(request, f"{bot.name}: {verb} requested", messages.SUCCESS)

    @admin.action(description="Start selected bots", permissions=["change"])
    def start_bots(self, request, queryset) -> None:
        self._apply(request, queryset, lifecycle.request_start, "start")

    @admin.action(description="Stop selected bots", permissions=["change"])
    def stop_bots(self, request, queryset) -> None:
        self._apply(request, queryset, lifecycle.request_stop, "stop")

    @admin.action(description="Restart selected bots", permissions=["change"])
    def restart_bots(self, request, queryset) -> None:
        self._apply(request, queryset, lifecycle.request_restart, "restart")

    def delete_model(self, request, obj: Bot) -> None:
        # The lifecycle stops a bot's process before its row goes, and audits the deletion.
        deleted = lifecycle.request_delete(obj, user=request.user, ip=client_ip(request))
        report = getattr(request, "_bot_deletions", {"now": [], "later": []})
        report["now" if deleted else "later"].append(obj.name)
        request._bot_deletions = report
        if not deleted:
            self.message_user(
                request,
                f"{obj.name}: its process is being stopped; the bot will be deleted once the process has exited.",
                messages.WARNING,
            )

    def delete_queryset(self, request, queryset) -> None:
        for bot in queryset:
            self.delete_model(request, bot)

    def message_user(self, request, message, level=messages.INFO, *args, **kwargs) -> None:
        """Django follows a deletion with a success message; it is wrong for a bot still being stopped.

        Its "was deleted successfully" / "Successfully deleted N" is the next success message
        after delete_model / delete_queryset: when some bot was not deleted yet, it is replaced
        by one naming the bots that really are gone (or dropped: the warnings say the rest).
        """
        report = getattr(request, "_bot_deletions", None)
        if level == messages.SUCCESS and report and report["later"]:
            request._bot_deletions = None
            if report["now"]:
                super().message_user(request, f"Deleted: {', '.join(report['now'])}.", messages.SUCCESS)
            return
        super().message_user(request, message, level, *args, **kwargs)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, bot: Bot):
        colour = STATUS_COLOURS.get(bot.status, "#616161")
        return format_html('<strong style="color:{}">{}</strong>', colour, bot.get_status_display())

    @admin.display(description="Host:port")
    def address(self, bot: Bot) -> str:
        return bot.address or "—"

    @admin.display(description="Uptime", ordering="started_at")
    def uptime_display(self, bot: Bot) -> str:
        if bot.uptime is None:
            return "—"
        return timesince(bot.started_at)

    @admin.display(description="Last error")
    def short_error(self, bot: Bot) -> str:
        return (bot.last_error[:80] + "…") if len(bot.last_error) > 80 else (bot.last_error or "—")


@admin.register(ChatMessage)
class ChatMessageAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "bot", "role", "short_content", "latency_ms", "conversation")
    list_filter = ("role", "bot", "created_at")
    list_select_related = ("bot",)
    search_fields = ("content", "=conversation")
    date_hierarchy = "created_at"
    show_full_result_count = False

    @admin.display(description="Content")
    def short_content(self, message: ChatMessage) -> str:
        return message.content[:100]
