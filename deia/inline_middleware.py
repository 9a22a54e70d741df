"""Django's own middleware, run on the event loop instead of a thread hop per hook.

In an async (ASGI) chain Django's MiddlewareMixin runs every process_request,
process_view and process_response in a thread, in case it blocks: with a dozen
middleware that is two dozen thread hand-offs per request, most of the web's CPU per
chat. These hooks only compute (headers, cookies, a lazy user, counters), so here they
run inline. The one that can block, the session's save, still goes to a thread, and
only when there is something to save.

The adapter for Django's middleware machinery: it relies on MiddlewareMixin calling
`__acall__` in async mode and on the handler picking a coroutine `process_view` up as
async (tests/unit/test_inline_middleware.py pins both).
"""

from __future__ import annotations

from types import MethodType

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.middleware import common
from django_prometheus import middleware as prometheus


class Inline:
    """Mixed into a MiddlewareMixin whose hooks do no I/O."""

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


class PrometheusBeforeMiddleware(Inline, prometheus.PrometheusBeforeMiddleware):
    pass


class PrometheusAfterMiddleware(Inline, prometheus.PrometheusAfterMiddleware):
    pass


class CommonMiddleware(Inline, common.CommonMiddleware):
    pass


class AuthenticationMiddleware(Inline, auth.AuthenticationMiddleware):
    pass


class MessageMiddleware(Inline, messages.MessageMiddleware):
    pass


class SessionMiddleware(Inline, sessions.SessionMiddleware):
    """The session loads lazily (in the view's thread); saving it writes to the database."""

    async def finish(self, request, response):
        session = getattr(request, "session", None)
        if session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST):
            return await sync_to_async(self.process_response, thread_sensitive=True)(request, response)
        return self.process_response(request, response)
