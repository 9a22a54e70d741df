"""The base of our own middleware: one class usable in a sync (WSGI) and an async (ASGI)
chain, with no import beyond asgiref, so a bot runner can load what derives from it."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction


class BothChains:
    """A middleware usable in a sync (WSGI) and an async (ASGI) chain."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
