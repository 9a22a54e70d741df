"""deia.adapters.adrf: pins adrf's dispatch as the adapter uses it (it calls `initial`,
which its APIView does not define, before the handler, and handles what the checks raise)."""

from __future__ import annotations

import asyncio
import threading

import adrf.views
from asgiref.sync import sync_to_async
from django.test import RequestFactory
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from deia.adapters.adrf import ChecksInHandlerAPIView
from tests.adapters.pins import assert_installed_as_pinned


def test_adrf_is_the_version_the_adapter_was_written_against():
    assert_installed_as_pinned("adrf")


def test_adrfs_apiview_leaves_initial_to_drf():
    assert "initial" not in vars(adrf.views.APIView)


class Probe(ChecksInHandlerAPIView):
    authentication_classes = ()
    throttle_classes = ()
    permission_classes = (IsAuthenticated,)
    calls: list = []

    def initial(self, request, *args, **kwargs) -> None:
        self.calls.append(("initial", threading.get_ident()))
        super().initial(request, *args, **kwargs)

    async def get(self, request):
        self.calls.append(("handler", threading.get_ident()))
        await sync_to_async(self.run_checks)(request)
        return Response({"ok": True})


def test_initial_runs_before_the_handler_and_the_checks_run_when_it_says():
    Probe.calls = []

    response = asyncio.run(Probe.as_view()(RequestFactory().get("/")))

    assert [name for name, _ in Probe.calls] == ["initial", "handler"]
    # The handler's checks refused the anonymous caller, as DRF's initial would have.
    assert response.status_code in (401, 403)
