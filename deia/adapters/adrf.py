"""The adapter for adrf (DRF on async views): checks that run when the handler says.

adrf's dispatch runs DRF's `initial` (content negotiation, authentication, permissions,
throttles) in a thread of its own before an async handler. A handler that has more
synchronous work (load the object, take a slot) does better with one hop for all of it:
the dispatch here skips `initial`, and the handler calls `run_checks` inside its own hop.
The answer leaves rendered (JSON, on the event loop) as a plain HttpResponse: Django's
handler would otherwise hand a DRF Response to a thread just to render it.
Relied on: adrf's APIView does not define `initial`, and its `async_dispatch` is DRF's
dispatch with an awaited handler (tests/adapters/test_adrf.py pins both).
"""

from __future__ import annotations

from adrf.views import APIView
from asgiref.sync import iscoroutinefunction, sync_to_async
from django.http import HttpResponse
from django.template.response import SimpleTemplateResponse
from rest_framework.views import APIView as DRFAPIView


class ChecksInHandlerAPIView(APIView):
    def initial(self, request, *args, **kwargs) -> None:
        """Not called by this dispatch: the handler runs `run_checks`."""

    def run_checks(self, request, *args, **kwargs) -> None:
        """DRF's checks (raising as they do), in the caller's thread."""
        DRFAPIView.initial(self, request, *args, **kwargs)

    async def async_dispatch(self, request, *args, **kwargs):
        """adrf's async_dispatch without the thread hop for `initial`, answering rendered."""
        self.args = args
        self.kwargs = kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        try:
            handler = getattr(self, request.method.lower(), None)
            if request.method.lower() not in self.http_method_names or handler is None:
                handler = self.http_method_not_allowed
            if iscoroutinefunction(handler):
                response = await handler(request, *args, **kwargs)
            else:
                response = await sync_to_async(handler)(request, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - DRF's handler turns any error into its answer
            response = self.handle_exception(exc)
        self.response = self.finalize_response(request, response, *args, **kwargs)
        return _rendered(self.response)


def _rendered(response):
    """A DRF Response as the plain HttpResponse it renders to (same body, status, headers)."""
    if not isinstance(response, SimpleTemplateResponse):
        return response  # a stream, or a plain response already
    response.render()
    plain = HttpResponse(response.content, status=response.status_code, reason=response.reason_phrase)
    plain.headers = response.headers
    plain.cookies = response.cookies
    return plain
