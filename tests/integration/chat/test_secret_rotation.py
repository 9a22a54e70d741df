"""Each start gives the runner a fresh secret: after a restart only the new one opens /chat."""

from __future__ import annotations

from pathlib import Path

import httpx

from bots.models import Backend, Bot, Status
from deia.models import AuditLog
from tests.support.procs import wait_for


def test_a_restart_gives_a_new_secret_the_relay_follows_and_the_old_one_is_refused(web, bot_worker, tmp_path):
    api = web()
    bot_worker("host-a")
    bot = Bot.objects.create(name="Rotating", slug="rotating", backend=Backend.ECHO, model_name="echo")
    api.start_bots([bot])
    before = Bot.objects.get(pk=bot.pk)
    assert api.post(f"/api/bots/{bot.pk}/messages", {"message": "first"}).status_code == 200

    assert api.post(f"/api/bots/{bot.pk}/restart").status_code == 202
    after = wait_for(
        lambda: Bot.objects.filter(pk=bot.pk, status=Status.RUNNING).exclude(pid=before.pid).first(),
        timeout=60,
        what="the bot running again in a new process",
    )

    assert after.chat_secret and after.chat_secret != before.chat_secret
    reply = api.post(f"/api/bots/{bot.pk}/messages", {"message": "second"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["reply"] == "echo: second"
    stale = httpx.post(
        f"http://{after.address}/chat", json={"message": "x"}, headers={"X-Bot-Secret": before.chat_secret}
    )
    assert stale.status_code == 401
    # Never on a command line, in an audit row or in a log line.
    assert after.chat_secret not in Path(f"/proc/{after.pid}/cmdline").read_text()
    for row in AuditLog.objects.all():
        assert after.chat_secret not in f"{row.target} {row.details}"
    for log in tmp_path.rglob("*.log"):
        assert after.chat_secret not in log.read_text(errors="replace")
