"""deia.adapters.adrf: pins adrf's dispatch as the adapter copies it (it calls `initial`,
which its APIView does not define, before the handler, and handles what the checks raise),
and the adapter's dispatch: no hop for `initial`, the answer rendered."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading

import adrf.views
from asgiref.sync import sync_to_async
from django.http import HttpResponse
from django.test import RequestFactory
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from deia.adapters.adrf import ChecksInHandlerAPIView
from tests.adapters.pins import assert_installed_as_pinned


def test_adrf_is_the_version_the_adapter_was_written_against():
    assert_installed_as_pinned("adrf")


def test_adrfs_apiview_leaves_initial_to_drf():
    assert "initial" not in vars(adrf.views.APIView)


def test_adrfs_async_dispatch_is_drfs_dispatch_with_an_awaited_handler():
    # The adapter's dispatch is a copy of it without the hop for `initial`: a change here
    # (a new hook, another order) must be looked at before the pin moves.
    source = inspect.getsource(adrf.views.APIView.async_dispatch)

    assert "await sync_to_async(self.initial)(request, *args, **kwargs)" in source
    assert "response = await handler(request, *args, **kwargs)" in source
    assert "response = self.handle_exception(exc)" in source
    assert "self.response = self.finalize_response(request, response, *args, **kwargs)" in source


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
        if request.query_params.get("check"):
            await sync_to_async(self.run_checks)(request)
        return Response({"ok": True}, headers={"X-Probe": "1"})


def test_the_handler_runs_without_a_hop_for_initial_and_the_checks_run_when_it_says():
    Probe.calls = []

    response = asyncio.run(Probe.as_view()(RequestFactory().get("/", {"check": "1"})))

    assert [name for name, _ in Probe.calls] == ["handler"]
    # The handler's checks refused the anonymous caller, as DRF's initial would have.
    assert response.status_code in (401, 403)
    assert json.loads(response.content)["detail"]


def test_the_answer_leaves_rendered_as_a_plain_response_with_drfs_headers():
    Probe.calls = []

    response = asyncio.run(Probe.as_view()(RequestFactory().get("/")))

    assert type(response) is HttpResponse  # Django's handler renders nothing in a thread
    assert response.status_code == 200
    assert json.loads(response.content) == {"ok": True}
    assert response["Content-Type"] == "application/json"
    assert response["X-Probe"] == "1"
    assert "GET" in response["Allow"]  # DRF's default headers kept
