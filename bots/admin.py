from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce, Now
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from bots import access, botpage, lifecycle
from bots.lifecycle import hosts, machine
from bots.models import OBSERVED_FIELDS, Bot, ChatMessage, Host, HostState, Status
from deia.adapters.django import DeferredDeletionMessages
from deia.admin import ReadOnlyAdmin
from deia.admin_audit import AuditedAdminMixin
from deia.audit import client_ip
from deia.paginator import EstimatedCountPaginator

RECENT_MESSAGES = 20

STATUS_COLOURS = {
    Status.RUNNING: "#2e7d32",
    Status.STARTING: "#1565c0",
    Status.STOPPING: "#1565c0",
    Status.STOPPED: "#616161",
    Status.CRASHED: "#e65100",
    Status.ERROR: "#c62828",
    Status.LOST: "#c62828",
}


class VisibleBotFilter(admin.RelatedFieldListFilter):
    """A filter by bot that lists only the bots the user may see."""

    def field_choices(self, field, request, model_admin):
        return list(access.visible_bots(request.user).values_list("pk", "name"))


class TeamFilter(admin.RelatedFieldListFilter):
    """A filter by team that lists only the teams the user may give a bot."""

    def field_choices(self, field, request, model_admin):
        return list(access.team_choices(request.user).values_list("pk", "name"))


class TeamScopedAdmin(admin.ModelAdmin):
    """Objects of bots the user may not see are not there: absent from lists, 404 by URL.

    `bot_path` leads from the model to its bot ("" for Bot itself). An id that is not
    visible (another team's, a deleted one, or not an id at all) is a 404 alike, so the
    answer never tells whether another team's bot exists.
    """

    bot_path = ""

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if access.sees_all(request.user):
            return queryset
        if not self.bot_path:
            return access.visible_bots(request.user, queryset)
        return queryset.filter(**{f"{self.bot_path}__in": access.visible_bots(request.user).values("pk")})

    def _visible_or_404(self, request, object_ids) -> None:
        ids = {str(pk) for pk in object_ids}
        if not all(pk.isdigit() for pk in ids) or self.get_queryset(request).filter(pk__in=ids).count() != len(ids):
            raise Http404(f"No {self.opts.verbose_name} with that id.")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if object_id is not None:
            self._visible_or_404(request, [object_id])
        return super().change_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        self._visible_or_404(request, [object_id])
        return super().delete_view(request, object_id, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        self._visible_or_404(request, [object_id])
        return super().history_view(request, object_id, extra_context)

    def changelist_view(self, request, extra_context=None):
        action = posted_action(request)
        if action:
            self.refuse_action(request, action, request.POST.getlist(ACTION_CHECKBOX_NAME))
        return super().changelist_view(request, extra_context)

    def refuse_action(self, request, action: str, selected: list[str]) -> None:
        """Raise PermissionDenied or Http404 before an action runs on what it may not touch.

        An action the user may not run is a 403 (Django would only say "no action selected");
        the permission is checked before the bots are looked up, as in the API.
        """
        if action not in self.get_actions(request):
            raise PermissionDenied
        self._visible_or_404(request, selected)


def posted_action(request) -> str | None:
    """The admin action a changelist POST asks for (the form at the top or the bottom)."""
    if request.method != "POST" or "_save" in request.POST:
        return None
    names = request.POST.getlist("action")
    index = request.POST.get("index", "0")
    position = int(index) if index.isdigit() else 0
    return names[position] if position < len(names) else None


# The admin actions that start, stop or restart, with the verb of their *_denied audit row.
OPERATE_ACTIONS = {"start_bots": "start", "stop_bots": "stop", "restart_bots": "restart"}


@admin.register(Bot)
class BotAdmin(DeferredDeletionMessages, AuditedAdminMixin, TeamScopedAdmin):
    # A deletion is audited by the lifecycle, which stops the process first; it may only
    # be requested while the process stops (Django's "deleted successfully" would be wrong).
    audit_admin_deletions = False
    list_display = (
        "name",
        "status_badge",
        "desired_state",
        "team",
        "address",
        "uptime_display",
        "restart_count",
        "short_error",
    )
    list_select_related = ("team",)
    list_filter = ("status", "desired_state", "backend", ("team", TeamFilter))
    search_fields = ("name", "slug", "model_name", "host")
    prepopulated_fields = {"slug": ("name",)}
    # desired_state changes only through the actions, which audit and enqueue the reconcile.
    readonly_fields = (
        *("desired_state", *OBSERVED_FIELDS, "address", "uptime_display", "created_at", "updated_at"),
        "lifecycle_table",
    )
    fieldsets = (
        (None, {"fields": ("name", "slug", "team", "backend", "model_name", "system_prompt", "desired_state")}),
        ("Placement", {"fields": ("required_label",), "classes": ("collapse",)}),
        # The process (OBSERVED_FIELDS) is the page's live panel, above the form: bots.botpage.
        ("Record", {"fields": ("created_at", "updated_at")}),
        (
            "Lifecycle",
            {
                "fields": ("lifecycle_table",),
                "classes": ("collapse",),
                "description": "Only the lifecycle changes a bot's status, and only along these transitions.",
            },
        ),
    )
    actions = ("start_bots", "stop_bots", "restart_bots")

    def has_operate_permission(self, request) -> bool:
        return access.may(request.user, access.OPERATE)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "team" and not access.sees_all(request.user):
            # A team member gives a bot one of their own teams, never none (it would vanish for them).
            kwargs["queryset"] = access.team_choices(request.user)
            kwargs["required"] = True
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def refuse_action(self, request, action: str, selected: list[str]) -> None:
        if action in OPERATE_ACTIONS and not self.has_operate_permission(request):
            access.audit_denied(OPERATE_ACTIONS[action], request.user, selected, request=request)
            raise PermissionDenied
        super().refuse_action(request, action, selected)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # Messages are chat content: shown with bots.chat_bot only, as the API shows them.
        context["may_chat"] = access.may(request.user, access.CHAT)
        if obj is not None and context["may_chat"]:
            # Served by the (bot, -created_at) index; the full history is in Chat messages.
            context["recent_messages"] = list(
                ChatMessage.objects.filter(bot_id=obj.pk).order_by("-created_at", "-id")[:RECENT_MESSAGES]
            )
        if obj is not None:
            context.update(self.live_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- the bot page: live status, buttons, audit trail (bots.botpage) -----------------
    def live_context(self, request, bot: Bot) -> dict:
        # The page is a 404 for a bot the user may not see, so the buttons need OPERATE only.
        may_audit = access.may(request.user, botpage.VIEW_AUDIT)
        return {
            "live": botpage.live_status(bot),
            "may_operate": self.has_operate_permission(request),
            "operate_verbs": list(botpage.OPERATE_REQUESTS),
            "may_audit": may_audit,
            "audit_trail": botpage.audit_trail(bot) if may_audit else [],
            "recent_errors": botpage.recent_errors(bot) if may_audit else [],
        }

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<str:object_id>/live/",
                self.admin_site.admin_view(self.live_view),
                name="{}_{}_live".format(*info),
            ),
            path(
                "<str:object_id>/operate/<str:verb>/",
                self.admin_site.admin_view(self.operate_view),
                name="{}_{}_operate".format(*info),
            ),
            *super().get_urls(),
        ]

    def live_view(self, request, object_id: str) -> JsonResponse:
        """The bot page's poll: GET, JSON, as permission-checked as the page (403, other teams 404)."""
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        if not self.has_view_permission(request):
            detail = "This needs the bots.view_bot permission."
            return JsonResponse({"error": "permission_denied", "detail": detail}, status=403)
        bots = self.get_queryset(request).select_related("team").defer("system_prompt")
        bot = bots.filter(pk=int(object_id)).first() if object_id.isdigit() else None
        if bot is None:
            return JsonResponse({"error": "not_found", "detail": "No bot with that id."}, status=404)
        return JsonResponse(botpage.live_status(bot))

    def operate_view(self, request, object_id: str, verb: str):
        """The page's Start, Stop and Restart: POST with confirm=yes, else a confirmation page.

        Refused as the list's actions are: without bots.operate_bot a 403 and one
        bot.<verb>_denied row, before the bot is looked up; another team's bot is a 404.
        """
        if verb not in botpage.OPERATE_REQUESTS:
            raise Http404("No such operation.")
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_view_permission(request):
            raise PermissionDenied
        if not self.has_operate_permission(request):
            access.audit_denied(verb, request.user, [object_id], request=request)
            raise PermissionDenied
        self._visible_or_404(request, [object_id])
        bots = self.get_queryset(request).filter(pk=int(object_id))
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "original": bots.get(),
                "verb": verb,
                "title": f"{verb.capitalize()} this bot?",
            }
            return TemplateResponse(request, "admin/bots/bot/operate_confirm.html", context)
        self._apply(request, bots, botpage.OPERATE_REQUESTS[verb], verb)
        return HttpResponseRedirect(reverse("admin:bots_bot_change", args=[int(object_id)]))

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

    @admin.action(description="Start selected bots", permissions=["operate"])
    def start_bots(self, request, queryset) -> None:
        self._apply(request, queryset, botpage.OPERATE_REQUESTS["start"], "start")

    @admin.action(description="Stop selected bots", permissions=["operate"])
    def stop_bots(self, request, queryset) -> None:
        self._apply(request, queryset, botpage.OPERATE_REQUESTS["stop"], "stop")

    @admin.action(description="Restart selected bots", permissions=["operate"])
    def restart_bots(self, request, queryset) -> None:
        self._apply(request, queryset, botpage.OPERATE_REQUESTS["restart"], "restart")

    def delete_model(self, request, obj: Bot) -> None:
        # The lifecycle stops a bot's process before its row goes, and audits the deletion.
        deleted = lifecycle.request_delete(obj, user=request.user, ip=client_ip(request))
        if deleted:
            self.deletion_done(request, obj.name)
        else:
            self.deletion_pending(request, obj.name)
            self.message_user(
                request,
                f"{obj.name}: its process is being stopped; the bot will be deleted once the process has exited.",
                messages.WARNING,
            )

    def get_deleted_objects(self, objs, request):
        # A bot's messages go with it; that their admin is read-only must not forbid deleting the bot.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(ChatMessage._meta.verbose_name)
        return deleted, counts, perms_needed, protected

    def delete_queryset(self, request, queryset) -> None:
        for bot in queryset:
            self.delete_model(request, bot)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, bot: Bot):
        colour = STATUS_COLOURS.get(bot.status, "#616161")
        return format_html('<strong style="color:{}">{}</strong>', colour, bot.get_status_display())

    @admin.display(description="Allowed transitions")
    def lifecycle_table(self, bot: Bot):
        """bots.lifecycle.machine's table; the rows that leave the bot's current status in bold."""
        body = format_html_join(
            "",
            '<tr style="font-weight:{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (("bold" if bot.status in t.sources else "normal", *machine.cells(t)) for t in machine.TRANSITIONS),
        )
        return format_html("<table><tr><th>From</th><th>Event</th><th>To</th><th>When</th></tr>{}</table>", body)

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
class ChatMessageAdmin(TeamScopedAdmin, ReadOnlyAdmin):
    """Messages are read with bots.chat_bot, as in the API (the model's view permission is not enough)."""

    bot_path = "bot"
    list_display = ("created_at", "bot", "role", "short_content", "latency_ms", "conversation")
    list_filter = ("role", ("bot", VisibleBotFilter), "created_at")
    list_select_related = ("bot",)
    search_fields = ("content", "=conversation")
    date_hierarchy = "created_at"
    show_full_result_count = False
    paginator = EstimatedCountPaginator

    def has_view_permission(self, request, obj=None) -> bool:
        return access.may(request.user, access.CHAT)

    def has_module_permission(self, request) -> bool:
        return self.has_view_permission(request)

    @admin.display(description="Content")
    def short_content(self, message: ChatMessage) -> str:
        return message.content[:100]


HOST_COLOURS = {HostState.ALIVE: "#2e7d32", HostState.DRAINING: "#1565c0", HostState.LOST: "#c62828"}


@admin.register(Host)
class HostAdmin(ReadOnlyAdmin):
    """The fleet's hosts, kept by their workers' heartbeats: read-only, drain and undrain only."""

    list_display = ("name", "address", "state_badge", "bot_count", "capacity", "last_seen", "labels", "version")
    fields = ("name", "address", "state_badge", "capacity", "last_seen", "labels", "version", "draining_since")
    fields += ("lost_at", "bots_here")
    readonly_fields = fields
    actions = ("drain_hosts", "undrain_hosts")
    search_fields = ("name", "address", "labels")

    def get_queryset(self, request):
        placed = Bot.objects.placed().filter(host=OuterRef("name")).order_by().values("host")
        count = placed.annotate(n=Count("id")).values("n")
        # The state is judged by the database's clock, read with the rows.
        return super().get_queryset(request).annotate(bots=Coalesce(Subquery(count), 0), db_now=Now())

    def changelist_view(self, request, extra_context=None):
        action = posted_action(request)
        if action and action not in self.get_actions(request):
            raise PermissionDenied  # Django alone would only say "no action selected"
        return super().changelist_view(request, extra_context)

    def has_manage_hosts_permission(self, request) -> bool:
        return access.may(request.user, access.MANAGE_HOSTS)

    def has_view_permission(self, request, obj=None) -> bool:
        return super().has_view_permission(request, obj) or self.has_manage_hosts_permission(request)

    def has_module_permission(self, request) -> bool:
        return self.has_view_permission(request)

    def _verb(self, request, queryset, verb: Callable, done: str, already: str) -> None:
        who = {"user": request.user, "ip": client_ip(request)}
        changed = [host.name for host in queryset if verb(host.name, **who)]
        if changed:
            self.message_user(request, f"{done}: {', '.join(changed)}", messages.SUCCESS)
        if len(changed) < len(queryset):
            self.message_user(request, f"{len(queryset) - len(changed)} host(s) {already}", messages.WARNING)

    @admin.action(description="Drain selected hosts (move their bots elsewhere)", permissions=["manage_hosts"])
    def drain_hosts(self, request, queryset) -> None:
        self._verb(request, queryset, hosts.drain, "Draining", "already draining")

    @admin.action(description="Undrain selected hosts (take new bots again)", permissions=["manage_hosts"])
    def undrain_hosts(self, request, queryset) -> None:
        self._verb(request, queryset, hosts.undrain, "Taking bots again", "were not draining")

    @admin.display(description="State")
    def state_badge(self, host: Host):
        state = host.state_at(host.db_now, settings.HOST_LEASE_SECONDS)
        return format_html('<strong style="color:{}">{}</strong>', HOST_COLOURS[state], state.label)

    @admin.display(description="Bots", ordering="bots")
    def bot_count(self, host: Host) -> int:
        return host.bots

    @admin.display(description="Bots on this host")
    def bots_here(self, host: Host):
        bots = Bot.objects.filter(host=host.name).order_by("name")
        if not bots:
            return "none"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a> ({})',
            ((reverse("admin:bots_bot_change", args=[b.pk]), b.name, b.status) for b in bots),
        )
