"""The adapter for WhiteNoise: its middleware in an async chain.

WhiteNoiseMiddleware is sync-only, which would make Django run every request below it in
a thread held for the whole request (chats included). This subclass looks the file up
and serves it as WhiteNoise's own `__call__` does, through its undocumented `autorefresh`,
`find_file`, `files` and `serve` (tests/adapters/test_whitenoise.py pins them).

Static files (the admin's, with DEBUG off) are small; in an async chain they are served
as one plain response. In production nginx serves /static/ itself.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None) -> None:
        super().__init__(get_response)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        static_file = self.find_file(request.path_info) if self.autorefresh else self.files.get(request.path_info)
        if not self.is_async:
            return self.serve(static_file, request) if static_file is not None else self.get_response(request)
        if static_file is None:
            return self.get_response(request)  # a coroutine: Django awaits it
        return self._aserve(static_file, request)

    async def _aserve(self, static_file, request) -> HttpResponse:
        streamed = self.serve(static_file, request)
        try:
            response = HttpResponse(b"".join(streamed.streaming_content), status=streamed.status_code)
        finally:
            streamed.close()
        for key, value in streamed.items():
            response[key] = value
        return response
