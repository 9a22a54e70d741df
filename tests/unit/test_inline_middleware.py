"""deia.inline_middleware, the adapter for Django's middleware machinery: pins what it
relies on (MiddlewareMixin calls __acall__ in async mode; Django takes a coroutine
process_view bound to its middleware)."""

from __future__ import annotations

import asyncio
import threading

from django.http import HttpResponse
from django.test import RequestFactory
from django.utils.deprecation import MiddlewareMixin

from deia.inline_middleware import Inline


class Probe(Inline, MiddlewareMixin):
    def process_request(self, request):
        request.request_hook_thread = threading.get_ident()

    def process_view(self, request, view, args, kwargs):
        request.view_hook_thread = threading.get_ident()

    def process_response(self, request, response):
        response.response_hook_thread = threading.get_ident()
        return response


async def view(request):
    return HttpResponse("ok")


def test_in_an_async_chain_every_hook_runs_on_the_event_loop_thread():
    middleware = Probe(view)

    async def one_request():
        request = RequestFactory().get("/")
        response = await middleware(request)
        await middleware.process_view(request, view, (), {})
        return request, response, threading.get_ident()

    request, response, loop_thread = asyncio.run(one_request())

    assert request.request_hook_thread == loop_thread
    assert request.view_hook_thread == loop_thread
    assert response.response_hook_thread == loop_thread


def test_process_view_becomes_a_coroutine_bound_to_its_middleware():
    middleware = Probe(view)

    assert asyncio.iscoroutinefunction(middleware.process_view)
    assert middleware.process_view.__self__ is middleware


def test_in_a_sync_chain_nothing_changes():
    middleware = Probe(lambda request: HttpResponse("ok"))
    request = RequestFactory().get("/")

    response = middleware(request)

    assert response.response_hook_thread == threading.get_ident()
    assert not asyncio.iscoroutinefunction(middleware.process_view)
