"""A real web (gunicorn, uvicorn workers) in front of real runner processes."""

from __future__ import annotations

import pytest

from bots.models import Backend, Bot, Status
from tests.plugins.observability import WebApi


@pytest.fixture
def running_bot(runner, transactional_db):
    """running_bot(slug, **runner_env) -> (bot, runner URL): a runner recorded as the bot's process.

    The bot row says what the lifecycle would say after a start (status, port, secret), so
    the web relays to it; no Celery worker is involved.
    """

    def start(slug: str = "chatty", backend: str = Backend.OLLAMA, **env: str):
        model = "echo" if backend == Backend.ECHO else "llama3.2"
        bot = Bot.objects.create(name=slug.title(), slug=slug, backend=backend, model_name=model)
        url = runner(bot, **env)
        Bot.objects.filter(pk=bot.pk).update(
            status=Status.RUNNING,
            desired_state="running",
            port=url.port,
            host="127.0.0.1",
            pid=url.proc.pid,
            chat_secret=url.auth["X-Bot-Secret"],
        )
        bot.refresh_from_db()
        return bot, url

    return start


@pytest.fixture
def web(gunicorn):
    """web(workers=1, **env) -> WebApi of a real gunicorn."""

    def start(workers: int = 1, **env: str) -> WebApi:
        return WebApi(gunicorn(workers=workers, **env))

    return start
