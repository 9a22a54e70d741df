"""The LLM backends against the fake Ollama server: the real client code over real HTTP."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from bots.llm import (
    EchoBackend,
    LLMBusy,
    LLMError,
    LLMReply,
    LLMTimeout,
    LLMUnavailable,
    ModelNotFound,
    OllamaBackend,
    OpenAIBackend,
    get_backend,
    probe_llm,
)
from bots.models import Backend, Bot
from tests.fakes.ollama import FakeOllama
from tests.support.procs import free_port, wait_for

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello world"}]


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


def ollama(url: str, model: str = "llama3.2", **kwargs) -> OllamaBackend:
    options = {"connect_timeout": 1.0, "read_timeout": 5.0, "retries": 2, "backoff": 0.01, **kwargs}
    return OllamaBackend(url, model, **options)


def openai(url: str, model: str = "llama3.2", **kwargs) -> OpenAIBackend:
    options = {"connect_timeout": 1.0, "read_timeout": 5.0, "retries": 2, "backoff": 0.01, **kwargs}
    return OpenAIBackend(f"{url}/v1", model, **options)


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "non-streaming"])
def test_ollama_answers_with_content_and_token_counts(fake, stream):
    reply = asyncio.run(ollama(fake.url, stream=stream).chat(MESSAGES, request_id="r1"))

    assert reply == LLMReply("fake reply to: hello world", prompt_tokens=4, completion_tokens=5)
    sent = fake.chats()[0]
    assert sent.body == {"model": "llama3.2", "messages": MESSAGES, "stream": stream}
    assert sent.headers["x-request-id"] == "r1"


def test_ollama_retries_a_busy_server_and_then_answers(fake):
    fake.fail_next(2, status=503)

    reply = asyncio.run(ollama(fake.url, retries=2).chat(MESSAGES, request_id="r"))

    assert reply.content == "fake reply to: hello world"
    assert len(fake.chats()) == 3


def test_ollama_retries_are_bounded(fake):
    fake.fail_next(10, status=503)

    with pytest.raises(LLMBusy, match="busy"):
        asyncio.run(ollama(fake.url, retries=2).chat(MESSAGES, request_id="r"))

    assert len(fake.chats()) == 3


def test_ollama_does_not_retry_other_server_errors(fake):
    fake.fail_next(1, status=500)

    with pytest.raises(LLMError, match="500"):
        asyncio.run(ollama(fake.url).chat(MESSAGES, request_id="r"))

    assert len(fake.chats()) == 1


def test_ollama_connection_errors_are_retried_then_reported():
    dead = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(LLMUnavailable, match="not reachable"):
        asyncio.run(ollama(dead, retries=1).chat(MESSAGES, request_id="r"))


def test_ollama_read_timeout_is_a_timeout_and_not_retried(fake):
    fake.hang_next(5)

    with pytest.raises(LLMTimeout, match="timed out"):
        asyncio.run(ollama(fake.url, read_timeout=0.3).chat(MESSAGES, request_id="r"))

    assert len(fake.chats()) == 1


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "non-streaming"])
def test_ollama_an_error_inside_a_200_answer_is_a_failure(fake, stream):
    fake.error_mid_stream(1)

    with pytest.raises(LLMError, match="fake failure"):
        asyncio.run(ollama(fake.url, stream=stream).chat(MESSAGES, request_id="r"))


def test_ollama_an_unknown_model_at_chat_time_is_model_not_found(fake):
    with pytest.raises(ModelNotFound, match="'mistral'"):
        asyncio.run(ollama(fake.url, model="mistral").chat(MESSAGES, request_id="r"))


def test_ollama_probe_accepts_a_name_without_tag_as_latest(fake):
    for model in ("llama3.2", "llama3.2:latest"):
        result = ollama(fake.url, model=model).probe()
        assert result.ok and result.error is None, result.detail
        assert result.facts == {"models": ["llama3.2:latest"], "model_found": True}


def test_ollama_probe_names_the_missing_model_and_how_to_pull_it(fake):
    result = ollama(fake.url, model="llama3.2:1b").probe()

    assert not result.ok and isinstance(result.error, ModelNotFound)
    assert result.facts == {"models": ["llama3.2:latest"], "model_found": False}
    assert (
        result.detail
        == str(result.error)
        == (
            f"model 'llama3.2:1b' is not available on the Ollama server at {fake.url}: "
            "pull it with 'ollama pull llama3.2:1b'"
        )
    )


def test_ollama_probe_of_a_dead_server_is_unavailable():
    result = ollama(f"http://127.0.0.1:{free_port()}", retries=0).probe()

    assert not result.ok and isinstance(result.error, LLMUnavailable)
    assert "not reachable: ConnectError" in result.detail


def test_a_model_list_that_is_not_there_is_a_server_error_not_a_missing_model(fake):
    result = ollama(f"{fake.url}/no-such-prefix", retries=0).probe()

    assert not result.ok and type(result.error) is LLMError
    assert "answered 404" in result.detail


def test_openai_answers_with_content_and_usage(fake):
    reply = asyncio.run(openai(fake.url, api_key="sk-test").chat(MESSAGES, request_id="r2"))

    assert reply == LLMReply("fake reply to: hello world", prompt_tokens=4, completion_tokens=5)
    sent = fake.chats()[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.headers["x-request-id"] == "r2"


def test_openai_sends_no_authorization_without_a_key(fake):
    asyncio.run(openai(fake.url).chat(MESSAGES, request_id="r"))

    assert "authorization" not in fake.chats()[0].headers


def test_openai_retries_503_and_reports_unknown_models(fake):
    fake.fail_next(1, status=503)
    assert asyncio.run(openai(fake.url).chat(MESSAGES, request_id="r")).content == "fake reply to: hello world"

    with pytest.raises(ModelNotFound, match="not found"):
        asyncio.run(openai(fake.url, model="mistral").chat(MESSAGES, request_id="r"))


def test_openai_probe_lists_models(fake):
    assert openai(fake.url).probe().ok
    fake.models = ["llama3.2:latest", "mistral:7b"]
    assert openai(fake.url, model="mistral:7b").probe().facts["models"] == ["llama3.2:latest", "mistral:7b"]
    result = openai(fake.url, model="mistral").probe()
    assert not result.ok and isinstance(result.error, ModelNotFound) and "'mistral'" in result.detail
    assert fake.requests[-1].path == "/v1/models"


def test_echo_is_deterministic_and_counts_words():
    backend = EchoBackend()
    first = asyncio.run(backend.chat(MESSAGES, request_id="a"))

    assert first == asyncio.run(backend.chat(MESSAGES, request_id="b"))
    assert first == LLMReply("echo: hello world", prompt_tokens=4, completion_tokens=3)
    assert backend.probe().ok


def test_get_backend_builds_each_kind_from_settings(settings):
    settings.OLLAMA_URL, settings.OPENAI_URL, settings.OPENAI_API_KEY = "http://o:1", "http://a:2/v1", None
    settings.LLM_RETRIES = 4

    native = get_backend(Bot(backend=Backend.OLLAMA, model_name="m1"))
    compatible = get_backend(Bot(backend=Backend.OPENAI, model_name="m2"))
    echo = get_backend(Bot(backend=Backend.ECHO, model_name="m3"))

    assert (native.name, native.base_url, native.model, native.retries) == ("ollama", "http://o:1", "m1", 4)
    assert (compatible.name, compatible.base_url, compatible.model) == ("openai", "http://a:2/v1", "m2")
    assert (echo.name, echo.model) == ("echo", "m3")


def test_probe_llm_takes_a_bot_or_a_backend_url_and_model(fake, settings):
    settings.OLLAMA_URL, settings.OPENAI_URL, settings.OPENAI_API_KEY = fake.url, f"{fake.url}/v1", "sk-probe"

    assert probe_llm(Bot(backend=Backend.OLLAMA, model_name="llama3.2")).ok
    missing = probe_llm(Bot(backend=Backend.OPENAI, model_name="mistral"))
    assert isinstance(missing.error, ModelNotFound) and missing.facts["models"] == ["llama3.2:latest"]
    assert fake.requests[-1].headers["authorization"] == "Bearer sk-probe"
    # No model: only that the server answers its list.
    assert probe_llm((Backend.OPENAI, f"{fake.url}/v1", "")).ok
    assert probe_llm((Backend.ECHO, "", "anything")).ok
    assert [r.path for r in fake.requests] == ["/api/tags", "/v1/models", "/v1/models"]


def test_probe_llm_gives_up_on_a_server_that_never_answers_after_its_timeout():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the kernel accepts the connection; nobody ever answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        result = probe_llm((Backend.OLLAMA, url, "llama3.2"), timeout=0.3, retries=0)
        elapsed = time.monotonic() - started

    assert not result.ok and isinstance(result.error, LLMTimeout)
    assert 0.3 <= elapsed < 2.0 and result.latency_s >= 0.3


async def pieces(backend, **kwargs) -> list:
    return [item async for item in backend.stream(MESSAGES, request_id="s", **kwargs)]


@pytest.mark.parametrize("make", [ollama, openai], ids=["ollama", "openai"])
def test_a_stream_yields_the_answer_piece_by_piece_then_the_whole_reply(fake, make):
    items = asyncio.run(pieces(make(fake.url)))

    assert items[:-1] == ["fake ", "reply ", "to: ", "hello ", "world"]
    assert items[-1] == LLMReply("fake reply to: hello world", prompt_tokens=4, completion_tokens=5)
    assert fake.chats()[0].body["stream"] is True


def test_the_echo_backend_streams_word_by_word():
    items = asyncio.run(pieces(EchoBackend()))

    assert items == ["echo:", " hello", " world", LLMReply("echo: hello world", 4, 3)]


@pytest.mark.parametrize("make", [ollama, openai], ids=["ollama", "openai"])
def test_cancelling_a_stream_closes_the_request_to_the_llm_server(fake, make):
    fake.chunk_delay = 0.2
    long = [{"role": "user", "content": " ".join(f"w{i}" for i in range(30))}]

    async def first_then_cancel() -> str:
        backend = make(fake.url)
        got: list = []

        async def consume() -> None:
            async for item in backend.stream(long, request_id="c"):
                got.append(item)

        task = asyncio.ensure_future(consume())
        while not got:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await backend.aclose()
        return got[0]

    assert asyncio.run(first_then_cancel()) == "fake "
    wait_for(lambda: fake.disconnects == 1, timeout=10, what="the fake to see its client gone")
