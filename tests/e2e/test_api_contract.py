"""The live API against its own OpenAPI schema: schemathesis with all of its checks.

A real gunicorn, a superuser's token and bots with messages in the database; schemathesis
(pinned in requirements-dev.txt) generates requests for every operation of /api/schema
and fails on any server error, any response outside the schema, any undocumented status
or content type, any valid input refused or invalid input accepted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bots.models import Backend, Bot, ChatMessage, Role
from tests.support.tokens import api_key

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


def api_token(user) -> str:
    return api_key(user)


@pytest.fixture
def fleet() -> list[int]:
    """Bots in every shape the API returns: stopped, with a page and a half of messages."""
    bots = [
        Bot.objects.create(name="Support", slug="support", backend=Backend.ECHO, model_name="echo"),
        Bot.objects.create(name="Sales", slug="sales", backend=Backend.OLLAMA, model_name="llama3.2"),
    ]
    ChatMessage.objects.bulk_create(
        ChatMessage(bot=bots[0], role=Role.USER if i % 2 else Role.ASSISTANT, content=f"message {i}", latency_ms=i)
        for i in range(75)
    )
    return [bot.pk for bot in bots]


def test_the_live_api_keeps_its_schema_under_schemathesis(gunicorn, django_user_model, fleet, redis_client, tmp_path):
    # redis_client: the start/stop requests enqueue tasks in this run's Redis database; it is emptied after.
    admin = django_user_model.objects.create_superuser("contract", password="x")
    url = gunicorn(workers=2, API_THROTTLE_USER="off")  # schemathesis is a runaway script by design
    config = tmp_path / "schemathesis.toml"
    # Half the generated ids are the real bots', so the success paths are checked too.
    config.write_text(
        f"[dictionaries]\nbot_ids = {{ values = {fleet} }}\n\n"
        '[parameters]\n"path.id" = { dictionary = "bot_ids", probability = 0.5 }\n'
    )
    result = subprocess.run(
        [
            SCHEMATHESIS,
            "--config-file",
            str(config),
            "--no-color",
            "run",
            f"{url}/api/schema",
            "--checks",
            "all",
            "--header",
            f"Authorization: Token {api_token(admin)}",
            "--max-examples",
            "25",
            "--seed",
            "20261201",
            "--workers",
            "2",
            "--request-timeout",
            "10",
            "--report-dir",
            str(tmp_path / "report"),
        ],
        cwd=tmp_path,  # schemathesis keeps a cache folder in its working directory
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-12000:]
    assert "No issues found" in output or " passed" in output, output[-4000:]
