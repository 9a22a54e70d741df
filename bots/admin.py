from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html
from django.utils.timesince import timesince

from bots.models import Bot, ChatMessage, Status
from ops.admin import ReadOnlyAdmin

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
class BotAdmin(admin.ModelAdmin):
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
    readonly_fields = (*PROCESS_FIELDS, "uptime_display", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "slug", "backend", "model_name", "system_prompt", "desired_state")}),
        ("Process", {"fields": (*PROCESS_FIELDS[:6], "uptime_display", *PROCESS_FIELDS[6:])}),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )

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
