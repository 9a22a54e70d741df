"""A fake Ollama server: a real HTTP server speaking the parts of Ollama's API the bots use.

Endpoints: GET /api/tags, GET /api/version, POST /api/chat (NDJSON stream or one JSON),
GET /v1/models, POST /v1/chat/completions. Answers are deterministic
("fake reply to: <last user message>", token counts = word counts).

Knobs (thread-safe, set from the test while runners talk to it):
- `models` — names /api/tags lists; a chat for any other model gets Ollama's 404 {"error"};
- `latency` — seconds before each chat answer starts;
- `chunk_delay` — seconds between the pieces of a streamed answer;
- `fail_next(n, status=503)` — the next n chats answer that status with {"error"};
- `error_mid_stream(n)` — the next n chats send one chunk, then an {"error"} line (status 200);
- `hang_next(n)` — the next n chats are accepted and never answered (until stop());
- `hold_tags()` / `release_tags()` — GET /api/tags (a runner's start-up check) waits until released.
Every request is recorded in `requests` (method, path, headers, parsed JSON body).
`disconnects` counts streamed answers whose client closed the connection before the end.

Standalone: `python -m tests.fakes.ollama --port 11434 [--models llama3.2,qwen2] [--latency 0.2]`.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_MODELS = ("llama3.2:latest",)
BUSY_ERROR = "server busy, please try again.  maximum pending requests exceeded"
STREAM_ERROR = "an error was encountered while running the model: fake failure"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any = None


@dataclass
class _Faults:
    fail: list[int] = field(default_factory=list)
    mid_stream: int = 0
    hang: int = 0


def _normalise(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


def reply_for(messages: list[dict]) -> tuple[str, int, int]:
    """The fake's answer to a conversation and its (prompt, completion) token counts."""
    last = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    content = f"fake reply to: {last}"
    prompt = sum(len(str(m.get("content", "")).split()) for m in messages)
    return content, prompt, len(content.split())


class FakeOllama:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, models: tuple[str, ...] = DEFAULT_MODELS) -> None:
        self.models = list(models)
        self.latency = 0.0
        self.chunk_delay = 0.0
        self.disconnects = 0
        self.requests: list[Recorded] = []
        self._faults = _Faults()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._tags_open = threading.Event()
        self._tags_open.set()
        self.server = _Server((host, port), self._handler_class())
        self.server.daemon_threads = True
        self.host, self.port = self.server.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._thread: threading.Thread | None = None

    # --- knobs ---------------------------------------------------------------------
    def fail_next(self, n: int = 1, status: int = 503) -> None:
        with self._lock:
            self._faults.fail.extend([status] * n)

    def error_mid_stream(self, n: int = 1) -> None:
        with self._lock:
            self._faults.mid_stream += n

    def hang_next(self, n: int = 1) -> None:
        with self._lock:
            self._faults.hang += n

    def hold_tags(self) -> None:
        """GET /api/tags waits (a model list that is slow to come) until release_tags()."""
        self._tags_open.clear()

    def release_tags(self) -> None:
        self._tags_open.set()

    def reset(self) -> None:
        with self._lock:
            self._faults = _Faults()
            self.requests.clear()
            self.latency = 0.0
            self.chunk_delay = 0.0
            self.disconnects = 0
            self._tags_open.set()
            self.models = list(DEFAULT_MODELS)

    def chats(self) -> list[Recorded]:
        """Recorded chat requests (native and OpenAI-compatible), oldest first."""
        with self._lock:
            return [r for r in self.requests if r.path in ("/api/chat", "/v1/chat/completions")]

    # --- lifecycle -----------------------------------------------------------------
    def start(self) -> FakeOllama:
        # A short poll interval keeps stop() (and so each test's teardown) quick.
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-ollama", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging and sleeping handlers
        self._tags_open.set()
        self.server.shutdown()
        self.server.server_close()
        if self._thread:
            self._thread.join(5)

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- internals -----------------------------------------------------------------
    def _record(self, entry: Recorded) -> None:
        with self._lock:
            self.requests.append(entry)

    def _take_fault(self) -> tuple[str, int]:
        """The fault the next chat suffers: ("hang"|"fail"|"mid"|"", status)."""
        with self._lock:
            if self._faults.hang:
                self._faults.hang -= 1
                return "hang", 0
            if self._faults.fail:
                return "fail", self._faults.fail.pop(0)
            if self._faults.mid_stream:
                self._faults.mid_stream -= 1
                return "mid", 0
        return "", 0

    def _has_model(self, name: str) -> bool:
        return _normalise(name) in {_normalise(m) for m in self.models}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        return Handler


class _Server(ThreadingHTTPServer):
    # Benchmarks open a thousand chats at once: the default backlog of 5 would drop SYNs.
    request_queue_size = 2048

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that go away (timeouts, disconnects) are what many tests do on purpose;
        # socketserver would print each as a traceback in the middle of pytest's output.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeOllama

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read `requests`; stderr noise helps nobody

    # --- plumbing ------------------------------------------------------------------
    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def _send_json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, obj: Any) -> None:
        data = (json.dumps(obj) + "\n").encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _record(self, body: Any = None) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.fake._record(Recorded(self.command, self.path, headers, body))

    # --- routes --------------------------------------------------------------------
    def do_GET(self) -> None:
        self._record()
        fake = self.fake
        if self.path == "/api/tags":
            fake._tags_open.wait()
            models = [{"name": _normalise(m), "model": _normalise(m), "size": 1, "details": {}} for m in fake.models]
            self._send_json(200, {"models": models})
        elif self.path == "/api/version":
            self._send_json(200, {"version": "0.0.0-fake"})
        elif self.path == "/v1/models":
            data = [{"id": _normalise(m), "object": "model", "owned_by": "library"} for m in fake.models]
            self._send_json(200, {"object": "list", "data": data})
        elif self.path == "/":
            body = b"Ollama is running"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self._send_json(404, {"error": "not found"})

    def do_POST(self) -> None:
        body = self._read_json()
        self._record(body)
        if self.path == "/api/chat":
            self._chat(body or {}, openai=False)
        elif self.path == "/v1/chat/completions":
            self._chat(body or {}, openai=True)
        else:
            self._send_json(404, {"error": "not found"})

    def _chat(self, body: dict, *, openai: bool) -> None:
        fake = self.fake
        fault, status = fake._take_fault()
        if fault == "hang":
            fake._stopping.wait()
            self.close_connection = True
            return
        if fault == "fail":
            error = BUSY_ERROR if status == 503 else f"fake failure {status}"
            self._send_json(status, {"error": {"message": error, "type": "api_error"}} if openai else {"error": error})
            return
        model = str(body.get("model", ""))
        if not fake._has_model(model):
            if openai:
                message = f'model "{model}" not found, try pulling it first'
                self._send_json(404, {"error": {"message": message, "type": "api_error"}})
            else:
                self._send_json(404, {"error": f"model '{model}' not found"})
            return
        if fake.latency:
            fake._stopping.wait(fake.latency)
        messages = body.get("messages") or []
        content, prompt, completion = reply_for(messages)
        if openai and body.get("stream"):
            self._stream_sse(model, content, prompt, completion)
        elif openai:
            self._send_json(200, _openai_reply(model, content, prompt, completion))
        elif body.get("stream", True):
            self._stream(model, content, prompt, completion, fail_midway=fault == "mid")
        elif fault == "mid":
            # Non-streaming has no "mid": the failure is the whole answer, still a 200.
            self._send_json(200, {"error": STREAM_ERROR})
        else:
            final = _final(model, prompt, completion)
            final["message"] = {"role": "assistant", "content": content}
            self._send_json(200, final)

    def _pieces(self, content: str):
        """The answer word by word, `chunk_delay` apart; counts a client that went away."""
        pieces = re.findall(r"\S+\s*", content) or [""]
        for i, piece in enumerate(pieces):
            if i and self.fake.chunk_delay:
                self.fake._stopping.wait(self.fake.chunk_delay)
            yield i, piece

    def _streaming(self, content_type: str, write) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            write()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            with self.fake._lock:
                self.fake.disconnects += 1
            self.close_connection = True

    def _stream(self, model: str, content: str, prompt: int, completion: int, *, fail_midway: bool) -> None:
        self._streaming("application/x-ndjson", lambda: self._ndjson(model, content, prompt, completion, fail_midway))

    def _ndjson(self, model: str, content: str, prompt: int, completion: int, fail_midway: bool) -> None:
        for i, piece in self._pieces(content):
            self._chunk(
                {
                    "model": model,
                    "created_at": _now(),
                    "message": {"role": "assistant", "content": piece},
                    "done": False,
                }
            )
            if fail_midway and i == 0:
                self._chunk({"error": STREAM_ERROR})
                break
        else:
            self._chunk(_final(model, prompt, completion))

    def _stream_sse(self, model: str, content: str, prompt: int, completion: int) -> None:
        self._streaming("text/event-stream", lambda: self._sse(model, content, prompt, completion))

    def _sse(self, model: str, content: str, prompt: int, completion: int) -> None:
        def event(data: str) -> None:
            raw = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
            self.wfile.flush()

        for _, piece in self._pieces(content):
            delta = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            event(json.dumps({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model, **delta}))
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        event(json.dumps({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "choices": [], "usage": usage}))
        event("[DONE]")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())


def _final(model: str, prompt: int, completion: int) -> dict:
    return {
        "model": model,
        "created_at": _now(),
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": "stop",
        "total_duration": 1_000_000,
        "load_duration": 1_000,
        "prompt_eval_count": prompt,
        "prompt_eval_duration": 1_000,
        "eval_count": completion,
        "eval_duration": 1_000,
    }


def _openai_reply(model: str, content: str, prompt: int, completion: int) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fake Ollama server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated model names")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each chat answer")
    args = parser.parse_args()
    fake = FakeOllama(args.host, args.port, tuple(m for m in args.models.split(",") if m))
    fake.latency = args.latency
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    fake.start()
    print(f"fake Ollama listening on {fake.url} with models {', '.join(fake.models)}", flush=True)
    stop.wait()
    fake.stop()


if __name__ == "__main__":
    main()
