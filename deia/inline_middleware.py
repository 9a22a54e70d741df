"""Django's own middleware, run on the event loop instead of a thread hop per hook.

In an async (ASGI) chain Django's MiddlewareMixin runs every process_request,
process_view and process_response in a thread, in case it blocks: with a dozen
middleware that is two dozen thread hand-offs per request, most of the web's CPU per
chat. These hooks only compute (headers, cookies, a lazy user, counters), so here they
run inline. The one that can block, the session's save, still goes to a thread, and
only when there is something to save.

The machinery (`Inline`) leans on Django's undocumented middleware internals, so it lives
in the Django adapter (deia/adapters/django.py), pinned by tests/adapters/test_django.py.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.middleware import clickjacking, common, csrf, security
from django_prometheus import middleware as prometheus

from deia.adapters.django import Inline


class PrometheusBeforeMiddleware(Inline, prometheus.PrometheusBeforeMiddleware):
    pass


class PrometheusAfterMiddleware(Inline, prometheus.PrometheusAfterMiddleware):
    pass


class CommonMiddleware(Inline, common.CommonMiddleware):
    pass


# Security, CSRF and X-Frame-Options only compute too, but `check --deploy` recognises them
# by Django's own dotted paths in MIDDLEWARE (security.W001 to W003), and its HSTS, SSL
# redirect and referrer checks pass silently without them. So MIDDLEWARE keeps Django's
# paths, and the chat door's handler (deia/asgi.py) builds its chain with these instead:
# six thread hand-offs fewer per chat.
class SecurityMiddleware(Inline, security.SecurityMiddleware):
    pass


class CsrfViewMiddleware(Inline, csrf.CsrfViewMiddleware):
    pass


class XFrameOptionsMiddleware(Inline, clickjacking.XFrameOptionsMiddleware):
    pass


def on_the_loop() -> dict[str, str]:
    """Django's dotted path -> ours, for the chat door's chain. CSRF only while its token
    lives in a cookie: with CSRF_USE_SESSIONS its hooks read the session (the database)."""
    pairs = [
        (SecurityMiddleware, security.SecurityMiddleware),
        (XFrameOptionsMiddleware, clickjacking.XFrameOptionsMiddleware),
    ]
    if not settings.CSRF_USE_SESSIONS:
        pairs.append((CsrfViewMiddleware, csrf.CsrfViewMiddleware))
    return {f"{base.__module__}.{base.__name__}": f"{__name__}.{ours.__name__}" for ours, base in pairs}


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
