"""The web's middleware chain stays async end to end: one sync-only middleware would make
Django run every request below it, chats included, in a thread held for the whole request."""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string


def test_every_middleware_can_run_in_an_async_chain():
    sync_only = [path for path in settings.MIDDLEWARE if not getattr(import_string(path), "async_capable", False)]

    assert sync_only == []


def test_the_chat_view_is_async():
    from bots.chat_api import BotMessagesView

    assert BotMessagesView.view_is_async
