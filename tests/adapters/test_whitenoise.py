"""deia.adapters.whitenoise: pins the WhiteNoise internals its async middleware uses
(autorefresh, find_file, files, serve) by serving a real static file both ways."""

from __future__ import annotations

import asyncio

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from deia.adapters.whitenoise import StaticFilesMiddleware
from tests.adapters.pins import assert_installed_as_pinned

CSS = "/static/admin/css/base.css"


def test_whitenoise_is_the_version_the_adapter_was_written_against():
    assert_installed_as_pinned("whitenoise")


@pytest.fixture
def found_by_finders(settings):
    settings.WHITENOISE_AUTOREFRESH = True
    settings.WHITENOISE_USE_FINDERS = True


async def below(request):
    return HttpResponse("below")


def test_in_an_async_chain_a_static_file_is_one_plain_response(found_by_finders):
    middleware = StaticFilesMiddleware(below)

    response = asyncio.run(middleware(RequestFactory().get(CSS)))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    assert b"body" in response.content


def test_in_an_async_chain_anything_else_goes_below(found_by_finders):
    middleware = StaticFilesMiddleware(below)

    response = asyncio.run(middleware(RequestFactory().get("/api/bots")))

    assert response.content == b"below"


@pytest.mark.django_db  # closing the response sends request_finished (database connections are tidied)
def test_in_a_sync_chain_whitenoise_serves_the_file_itself(found_by_finders):
    middleware = StaticFilesMiddleware(lambda request: HttpResponse("below"))

    response = middleware(RequestFactory().get(CSS))

    assert response.status_code == 200
    assert response.streaming
    response.close()


def test_the_files_table_is_used_when_not_autorefreshing(settings):
    settings.WHITENOISE_AUTOREFRESH = False
    middleware = StaticFilesMiddleware(lambda request: HttpResponse("below"))

    assert isinstance(middleware.files, dict)
    assert middleware(RequestFactory().get("/nothing-here")).content == b"below"
