"""deia.adapters.django: pins what it relies on in the installed Django (the middleware
machinery, a lazy object's state, the database pool, the admin's hooks and messages)."""

from __future__ import annotations

import asyncio
import inspect
import threading

import pytest
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.auth.models import Group
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_started
from django.db import connections
from django.http import HttpResponse
from django.middleware import csrf
from django.test import RequestFactory
from django.utils.deprecation import MiddlewareMixin
from django.utils.functional import SimpleLazyObject

from deia import inline_middleware
from deia.adapters.django import (
    ASGIHandlerWithoutThreadPerRequest,
    DeferredDeletionMessages,
    Inline,
    changelist_queryset,
    connection_pool,
    has_thread_per_request,
    is_loaded,
    is_unfiltered,
    mix_into_every_model_admin,
)
from tests.adapters.pins import assert_installed_as_pinned


def test_django_is_the_version_the_adapter_was_written_against():
    assert_installed_as_pinned("Django")


class Probe(Inline, MiddlewareMixin):
    def process_request(self, request):
        request.request_hook_thread = threading.get_ident()

    def process_view(self, request, view, args, kwargs):
        request.view_hook_thread = threading.get_ident()

    def process_response(self, request, response):
        response.response_hook_thread = threading.get_ident()
        return response


async def view(request):
    return HttpResponse("ok")


def test_in_an_async_chain_every_hook_runs_on_the_event_loop_thread():
    middleware = Probe(view)

    async def one_request():
        request = RequestFactory().get("/")
        response = await middleware(request)
        await middleware.process_view(request, view, (), {})
        return request, response, threading.get_ident()

    request, response, loop_thread = asyncio.run(one_request())

    assert request.request_hook_thread == loop_thread
    assert request.view_hook_thread == loop_thread
    assert response.response_hook_thread == loop_thread


def test_process_view_becomes_a_coroutine_bound_to_its_middleware():
    middleware = Probe(view)

    assert asyncio.iscoroutinefunction(middleware.process_view)
    assert middleware.process_view.__self__ is middleware


def test_in_a_sync_chain_nothing_changes():
    middleware = Probe(lambda request: HttpResponse("ok"))
    request = RequestFactory().get("/")

    response = middleware(request)

    assert response.response_hook_thread == threading.get_ident()
    assert not asyncio.iscoroutinefunction(middleware.process_view)


# --- lazy objects -------------------------------------------------------------------
def test_a_lazy_object_is_unloaded_until_first_used():
    user = SimpleLazyObject(lambda: "alice")

    assert not is_loaded(user)
    assert str(user) == "alice"
    assert is_loaded(user)
    assert is_loaded("not lazy at all")


# --- database pool ------------------------------------------------------------------
def test_the_postgresql_backend_exposes_psycopgs_pool_with_its_statistics():
    assert_installed_as_pinned("psycopg-pool")
    pool = connection_pool("default")

    assert pool is connections["default"].pool
    assert {"pool_min", "pool_max", "pool_size", "pool_available"} <= set(pool.get_stats())


# --- admin --------------------------------------------------------------------------
class Recording:
    """What the admin calls, in order."""

    def log_addition(self, request, obj, message):
        request.calls.append(("log_addition", obj.name))

    def log_change(self, request, obj, message):
        request.calls.append(("log_change", obj.name))

    def log_deletions(self, request, queryset):
        request.calls.append(("log_deletions", sorted(o.name for o in queryset)))

    def delete_model(self, request, obj):
        request.calls.append(("delete_model", obj.name))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        request.calls.append(("delete_queryset", sorted(o.name for o in queryset)))
        super().delete_queryset(request, queryset)

    def message_user(self, request, message, level=messages.INFO, *args, **kwargs):
        request.calls.append(("message", level, str(message)))


class RecordingGroupAdmin(Recording, admin.ModelAdmin):
    pass


def post(admin_user, data: dict):
    request = RequestFactory().post("/", data)
    request.user = admin_user
    request.calls = []
    request._dont_enforce_csrf_checks = True  # as Django's test client does
    return request


@pytest.mark.django_db
def test_the_delete_view_deletes_then_sends_one_success_message(admin_user):
    group = Group.objects.create(name="g1")
    request = post(admin_user, {"post": "yes"})

    RecordingGroupAdmin(Group, admin.site).delete_view(request, str(group.pk))

    assert request.calls == [
        ("log_deletions", ["g1"]),
        ("delete_model", "g1"),
        ("message", messages.SUCCESS, "The group “g1” was deleted successfully."),
    ]


@pytest.mark.django_db
def test_the_delete_selected_action_deletes_then_sends_one_success_message(admin_user):
    Group.objects.create(name="g1")
    Group.objects.create(name="g2")
    request = post(admin_user, {"post": "yes"})

    delete_selected(RecordingGroupAdmin(Group, admin.site), request, Group.objects.all())

    assert request.calls == [
        ("log_deletions", ["g1", "g2"]),
        ("delete_queryset", ["g1", "g2"]),
        ("message", messages.SUCCESS, "Successfully deleted 2 groups."),
    ]


@pytest.mark.django_db
def test_the_add_and_change_views_call_log_addition_and_log_change(admin_user):
    model_admin = RecordingGroupAdmin(Group, admin.site)
    adding, changing = post(admin_user, {"name": "g1"}), post(admin_user, {"name": "g2"})

    model_admin.add_view(adding)
    model_admin.change_view(changing, str(Group.objects.get(name="g1").pk))

    assert [c for c in adding.calls if c[0].startswith("log_")] == [("log_addition", "g1")]
    assert [c for c in changing.calls if c[0].startswith("log_")] == [("log_change", "g2")]


class Marked:
    pass


def test_every_registered_model_admin_gets_the_mixin_and_keeps_its_own_behaviour():
    site = admin.AdminSite(name="probe")
    site.register(Group, admin.ModelAdmin)

    mix_into_every_model_admin(Marked, "Marked", site)
    mix_into_every_model_admin(Marked, "Marked", site)

    model_admin = site.get_model_admin(Group)
    assert type(model_admin).__name__ == "MarkedModelAdmin"
    assert type(model_admin).__mro__[1:3] == (Marked, admin.ModelAdmin)


class DeferringGroupAdmin(DeferredDeletionMessages, Recording, admin.ModelAdmin):
    def delete_model(self, request, obj):
        if obj.name.startswith("later"):
            self.deletion_pending(request, obj.name)
        else:
            self.deletion_done(request, obj.name)
            obj.delete()

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


@pytest.mark.django_db
def test_djangos_success_message_names_only_what_is_gone_while_a_deletion_is_pending(admin_user):
    Group.objects.create(name="now1")
    Group.objects.create(name="later1")
    request = post(admin_user, {"post": "yes"})

    delete_selected(DeferringGroupAdmin(Group, admin.site), request, Group.objects.order_by("name"))

    assert [c for c in request.calls if c[0] == "message"] == [("message", messages.SUCCESS, "Deleted: now1.")]


# --- a queryset's filters and the changelist's rows ------------------------------------
def test_a_queryset_is_unfiltered_until_something_filters_its_rows():
    assert is_unfiltered(Group.objects.all())
    assert is_unfiltered(Group.objects.order_by("-name").select_related())
    assert not is_unfiltered(Group.objects.filter(name="a"))
    assert not is_unfiltered(Group.objects.exclude(name="a"))
    assert not is_unfiltered(Group.objects.filter(name__in=Group.objects.filter(name="b").values("pk")))


class SearchableGroupAdmin(admin.ModelAdmin):
    list_filter = ("name",)
    search_fields = ("name",)
    ordering = ("-name",)


@pytest.mark.django_db
def test_the_changelists_queryset_applies_its_filters_search_and_ordering(admin_user):
    for name in ("alpha", "beta", "alphabet", "gamma"):
        Group.objects.create(name=name)
    model_admin = SearchableGroupAdmin(Group, admin.site)
    request = RequestFactory().post("/")
    request.user = admin_user
    names = list(changelist_queryset(model_admin, request, "q=alpha").values_list("name", flat=True))
    assert names == ["alphabet", "alpha"]
    assert list(changelist_queryset(model_admin, request, "name=beta").values_list("name", flat=True)) == ["beta"]
    with pytest.raises(IncorrectLookupParameters):
        changelist_queryset(model_admin, request, "name__nope=1")


def test_djangos_asgi_handler_only_wraps_handle_in_a_thread_sensitive_context():
    # ASGIHandlerWithoutThreadPerRequest replaces __call__ with the same minus the context.
    source = inspect.getsource(ASGIHandler.__call__)

    assert "async with ThreadSensitiveContext():" in source
    assert "await self.handle(scope, receive, send)" in source
    assert source.count("await ") == 1


def _serve(handler, path: str) -> int:
    return _serve_whole(handler, path)[0]["status"]


def _serve_whole(handler, path: str) -> list[dict]:
    sent = []
    bodies = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        if bodies:
            return bodies.pop()
        await asyncio.Event().wait()  # no disconnect: the handler cancels this when done

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": []}
    scope["server"] = ("127.0.0.1", 80)
    asyncio.run(handler(scope, receive, send))
    return sent


@pytest.mark.parametrize(
    ("handler_class", "one_thread"), [(ASGIHandler, False), (ASGIHandlerWithoutThreadPerRequest, True)]
)
def test_without_a_thread_per_request_thread_sensitive_calls_share_the_processs_thread(handler_class, one_thread):
    seen = []
    flags = []

    def receiver(**kwargs):
        seen.append(threading.current_thread())  # sync: Django calls it thread-sensitively
        flags.append(has_thread_per_request())

    request_started.connect(receiver)
    try:
        handler = handler_class()
        statuses = [_serve(handler, "/health"), _serve(handler, "/health")]
    finally:
        request_started.disconnect(receiver)

    assert all(isinstance(status, int) for status in statuses)
    assert (seen[0] is seen[1]) is one_thread  # (thread objects: an ident can be reused)
    assert flags == [not one_thread] * 2  # what a view asks to pick its threads
    assert has_thread_per_request()  # outside any request
    if one_thread:
        with pytest.raises(ValueError):
            asyncio.run(handler({"type": "websocket"}, None, None))


def csrf_hooks(handler) -> list[type]:
    return [type(hook.__self__) for hook in handler._view_middleware if "Csrf" in type(hook.__self__).__name__]


def test_substitutes_change_only_the_handlers_own_chain(settings):
    listed = list(settings.MIDDLEWARE)

    handler = ASGIHandlerWithoutThreadPerRequest(substitutes=inline_middleware.on_the_loop())

    assert listed == settings.MIDDLEWARE  # what `check --deploy` reads: Django's own paths
    assert csrf_hooks(handler) == [inline_middleware.CsrfViewMiddleware]
    assert issubclass(inline_middleware.CsrfViewMiddleware, Inline)
    assert csrf_hooks(ASGIHandlerWithoutThreadPerRequest()) == [csrf.CsrfViewMiddleware]


def test_the_substituted_security_hooks_still_set_their_headers():
    handler = ASGIHandlerWithoutThreadPerRequest(substitutes=inline_middleware.on_the_loop())

    start = _serve_whole(handler, "/api/bots/1/messages")[0]  # refused: nobody signed in

    headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    assert start["status"] in (401, 403)
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"


def test_csrf_stays_off_the_loop_when_its_token_lives_in_the_session(settings):
    settings.CSRF_USE_SESSIONS = True

    substitutes = inline_middleware.on_the_loop()

    assert "django.middleware.csrf.CsrfViewMiddleware" not in substitutes
    assert "django.middleware.security.SecurityMiddleware" in substitutes
    assert "django.middleware.clickjacking.XFrameOptionsMiddleware" in substitutes
