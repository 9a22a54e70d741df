"""The base of our own middleware: one class usable in a sync (WSGI) and an async (ASGI) chain.

Nothing in such a middleware waits on its own: for an async chain, get_response returns
the coroutine Django awaits, and `is_async` says which chain this instance is in.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction


class SyncAndAsyncMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
