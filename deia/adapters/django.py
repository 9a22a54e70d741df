"""The adapter for Django: what we rely on that Django does not document as public.

- The ASGI handler (`ASGIHandlerWithoutThreadPerRequest`): `ASGIHandler.__call__` only
  refuses non-HTTP scopes and runs `handle` inside a ThreadSensitiveContext of its own.
- The middleware machinery (`Inline`): MiddlewareMixin calls `__acall__` in async mode
  (`async_mode`), and the handler takes a coroutine `process_view` bound to its middleware.
- A lazy object's state: `LazyObject._wrapped` is the sentinel `empty` until first use.
- The database pool: the PostgreSQL backend's `pool` property (psycopg_pool's pool), and
  its class-level registry `_connection_pools` (alias -> pool), which a forked process
  must empty to get a pool of its own.
- After a fork: `del connections[alias]` drops the wrapper without closing it, and
  psycopg finishes a connection only in the process that opened it (PGconn.__del__
  compares the pid), so the parent's session never receives a Terminate from the child.
- A queryset's filters: `QuerySet.query.where` is empty (falsy) exactly when nothing
  filters the rows (no filter(), exclude(), search or date lookup), slicing aside.
- The admin's changelist: `get_changelist_instance(request)` builds the list from
  `request.GET` and its `queryset` is the rows the list shows, its filters, search, date
  hierarchy and ordering applied; bad lookups raise IncorrectLookupParameters.
- The admin: `log_addition`, `log_change` and `log_deletions` are called for every add,
  edit and delete (bulk deletes included), and re-registering a model with a subclass of
  its ModelAdmin keeps that admin's behaviour; after `delete_model` (the delete view) and
  `delete_queryset` (the delete_selected action) the next success message is Django's
  "deleted successfully".

tests/adapters/test_django.py pins each of these against the installed Django.
"""

from __future__ import annotations

import contextvars
import weakref
from types import MethodType

from django.apps import apps
from django.conf import settings
from django.contrib import admin, messages
from django.core.handlers.asgi import ASGIHandler
from django.db import connections
from django.http import QueryDict
from django.utils.functional import LazyObject, empty


# --- middleware ---------------------------------------------------------------------
class Inline:
    """Mixed into a MiddlewareMixin whose hooks do no I/O: in an async chain they run on
    the event loop instead of a thread hop each."""

    def __init__(self, get_response) -> None:
        super().__init__(get_response)
        if self.async_mode:
            for hook in ("process_view", "process_template_response"):
                sync_hook = getattr(self, hook, None)
                if sync_hook is not None:
                    setattr(self, hook, _on_the_loop(self, sync_hook))

    async def __acall__(self, request):
        response = self.process_request(request) if hasattr(self, "process_request") else None
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = await self.finish(request, response)
        return response

    async def finish(self, request, response):
        return self.process_response(request, response)


def _on_the_loop(middleware, hook):
    """The sync hook as a coroutine method of the same instance (Django names its class)."""

    async def run(_self, *args, **kwargs):
        return hook(*args, **kwargs)

    return MethodType(run, middleware)


# --- ASGI handler -------------------------------------------------------------------
class ASGIHandlerWithoutThreadPerRequest(ASGIHandler):
    """Django's ASGI handler without its ThreadSensitiveContext per request.

    Django gives each request a thread of its own for thread-sensitive work, started on the
    first such call and joined by another new thread at the end: two thread starts per
    request, a large share of a short chat's cost under load. Without it, thread-sensitive
    calls (Django's signal receivers, its sync-only middleware hooks, a session save) share
    the process's one thread (each takes microseconds): only for views whose own database
    work runs elsewhere, in threads they keep (bots.chat_api).

    `substitutes` (dotted path -> dotted path) swaps middleware in this handler's chain
    only: settings.MIDDLEWARE, which `check --deploy` reads, stays as it is. Django's
    load_middleware, called by the constructor, reads settings.MIDDLEWARE as it runs."""

    def __init__(self, substitutes: dict[str, str] | None = None) -> None:
        self.substitutes = dict(substitutes or {})
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        listed = settings.MIDDLEWARE
        settings.MIDDLEWARE = [self.substitutes.get(path, path) for path in listed]
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = listed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        token = _no_thread_per_request.set(True)
        try:
            await self.handle(scope, receive, send)
        finally:
            _no_thread_per_request.reset(token)


_no_thread_per_request: contextvars.ContextVar[bool] = contextvars.ContextVar("no_thread_per_request", default=False)


def has_thread_per_request() -> bool:
    """True unless the request came through ASGIHandlerWithoutThreadPerRequest: under
    Django's own handlers and test clients, thread-sensitive calls go to the request's
    thread (the test's, with its transaction); under ours, a view sends its synchronous
    steps to threads it keeps."""
    return not _no_thread_per_request.get()


# --- lazy objects -------------------------------------------------------------------
def is_loaded(lazy: object) -> bool:
    """False for a LazyObject (request.user, for one) nobody has looked at yet."""
    return not isinstance(lazy, LazyObject) or lazy._wrapped is not empty


# --- database -----------------------------------------------------------------------
def connection_pool(alias: str = "default"):
    """psycopg_pool's pool behind a database alias, or None (SQLite, no pool configured)."""
    return getattr(connections[alias], "pool", None)


def is_unfiltered(queryset) -> bool:
    """True when the queryset reads every row of its table (ordering and joins aside)."""
    return not queryset.query.where


# Wrappers and pools a forked child inherited: kept referenced, never used. Collecting a pool
# would try to stop worker threads that did not survive the fork.
_inherited: list[object] = []


def forget_inherited_connections() -> None:
    """In a forked child: drop every database connection and pool of the parent, unclosed.

    Closing them would speak on sockets the parent still uses (a Terminate ends its session);
    the child's first query opens a connection, and a pool, of its own.
    """
    for wrapper in connections.all(initialized_only=True):
        _inherited.append(wrapper)
        del connections[wrapper.alias]
    for alias in connections:
        # Class-level: pools of other threads' wrappers too.
        pools = getattr(type(connections[alias]), "_connection_pools", None)
        if pools:
            _inherited.append(dict(pools))
            pools.clear()


# --- admin --------------------------------------------------------------------------
def mix_into_every_model_admin(mixin: type, prefix: str, site: admin.AdminSite = admin.site) -> None:
    """Re-register every registered ModelAdmin (ours and third-party apps') as a subclass
    with `mixin` first (named `prefix` + its name), unless it already has it."""
    for model in apps.get_models():
        if not site.is_registered(model):
            continue
        cls = type(site.get_model_admin(model))
        if issubclass(cls, mixin):
            continue
        site.unregister(model)
        site.register(model, type(f"{prefix}{cls.__name__}", (mixin, cls), {}))


def changelist_queryset(model_admin: admin.ModelAdmin, request, query: str):
    """The rows the model admin's changelist shows for the query string `query`, in its order.

    Raises IncorrectLookupParameters for a filter the list would refuse. `request.GET` is
    replaced by the query for the changelist to read: the request is not used afterwards.
    """
    request.GET = QueryDict(query)
    return model_admin.get_changelist_instance(request).queryset


_deletions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class DeferredDeletionMessages:
    """For a ModelAdmin whose delete_model may only *request* a deletion that finishes
    later: Django's "deleted successfully" that follows is replaced, while some object of
    the request is not gone yet, by one naming those that are (or dropped when none is).

    delete_model reports each object with `deletion_done` or `deletion_pending` (and says
    itself what is pending)."""

    def deletion_done(self, request, name: str) -> None:
        _deletions.setdefault(request, {"now": [], "later": []})["now"].append(name)

    def deletion_pending(self, request, name: str) -> None:
        _deletions.setdefault(request, {"now": [], "later": []})["later"].append(name)

    def message_user(self, request, message, level=messages.INFO, *args, **kwargs) -> None:
        report = _deletions.get(request)
        if level == messages.SUCCESS and report and report["later"]:
            del _deletions[request]
            if report["now"]:
                super().message_user(request, f"Deleted: {', '.join(report['now'])}.", messages.SUCCESS)
            return
        super().message_user(request, message, level, *args, **kwargs)
