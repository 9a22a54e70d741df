"""The adapter for adrf (DRF on async views): checks that run when the handler says.

adrf's dispatch runs DRF's `initial` (content negotiation, authentication, permissions,
throttles) in a thread of its own before an async handler. A handler that has more
synchronous work (load the object, take a slot) does better with one hop for all of it:
`initial` here does nothing, and the handler calls `run_checks` inside its own hop.
Relied on: adrf's APIView does not define `initial` and calls `self.initial` before the
handler, handling what it raises (tests/adapters/test_adrf.py pins both).
"""

from __future__ import annotations

from adrf.views import APIView
from rest_framework.views import APIView as DRFAPIView


class ChecksInHandlerAPIView(APIView):
    def initial(self, request, *args, **kwargs) -> None:
        """adrf calls this in a thread before the handler: the handler runs `run_checks`."""

    def run_checks(self, request, *args, **kwargs) -> None:
        """DRF's checks (raising as they do), in the caller's thread."""
        DRFAPIView.initial(self, request, *args, **kwargs)
