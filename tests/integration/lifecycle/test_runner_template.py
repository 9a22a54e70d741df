"""The host's runner template: bots forked from it behave as bots started by exec, and it can die,
be replaced or be missing without a running bot noticing."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
from django.db import connection, transaction

from bots import lifecycle
from bots.lifecycle.process import RUNNER_TITLE, health, is_runner, pid_alive, process_tag
from bots.models import Bot, Status
from deia.models import AuditLog, MetricValue
from tests.support.procs import wait_for

FALLBACKS = "deia_bot_start_fallbacks_total"


# --- looking at the process table -----------------------------------------------------
def status_of(bot: Bot) -> str:
    bot.refresh_from_db()
    return bot.status


def templates(host: str) -> list[int]:
    """Live runner templates of `host` for the test database."""
    tag = f"{host}/{connection.settings_dict['NAME']}/template"
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and process_tag(int(p)) == tag and pid_alive(int(p))]


def template_ready(worker, count: int = 1) -> int:
    """The pid of the worker host's template once it has said `count` times that it is ready."""
    log = Path(worker.env["LOG_DIR"]) / f"template-{worker.name}.log"
    wait_for(
        lambda: log.is_file() and log.read_text().count("runner template ready") >= count and templates(worker.name),
        timeout=30,
        what=f"runner template of {worker.name} ready",
    )
    (pid,) = templates(worker.name)
    return pid


def stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat from field 3 (state) on: [1] is the parent, [2] the group, [3] the session."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def parent_of(pid: int) -> int:
    return int(stat_fields(pid)[1])


def fallbacks(reason: str = "unavailable") -> float:
    row = MetricValue.objects.filter(name=FALLBACKS, labels=f"reason={reason}").first()
    return row.value if row else 0.0


def start(bot: Bot) -> Bot:
    lifecycle.request_start(bot, actor="test")
    wait_for(lambda: status_of(bot) == Status.RUNNING, timeout=30, what=f"{bot.slug} running")
    return bot


def chat(bot: Bot, message: str) -> str:
    response = httpx.post(
        f"http://{bot.address}/chat", json={"message": message}, headers={"X-Bot-Secret": bot.chat_secret}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()["reply"]


def heartbeat_moves(bot: Bot) -> None:
    before = bot.last_heartbeat
    wait_for(lambda: status_of(bot) and bot.last_heartbeat > before, timeout=10, what=f"{bot.slug} heartbeat moving")


# --- tests ----------------------------------------------------------------------------
def test_a_bot_started_through_the_template_serves_chat_heartbeats_and_stops_cleanly(bot_worker, settings):
    worker = bot_worker("host-a", AWS_SECRET_ACCESS_KEY="aws-secret-do-not-leak")
    zygote = template_ready(worker)
    bot = start(Bot.objects.create(name="Forked", slug="forked"))
    for pid in (zygote, bot.pid):  # a runner's environment is its template's: the allowlist, no more
        environ = Path(f"/proc/{pid}/environ").read_bytes() + Path(f"/proc/{pid}/cmdline").read_bytes()
        for leaked in (b"aws-secret-do-not-leak", b"REDIS_URL", bot.chat_secret.encode()):
            assert leaked not in environ, (pid, leaked)

    pid = bot.pid
    assert parent_of(pid) == zygote  # forked, not exec'd
    assert Path(f"/proc/{pid}/cmdline").read_bytes().startswith(f"{RUNNER_TITLE} host-a/".encode())
    # Its own session and process group, as an exec'd runner: stopping its group spares the template.
    assert stat_fields(pid)[2] == stat_fields(pid)[3] == str(pid)
    settings.HOSTNAME = "host-a"
    assert is_runner(pid, bot.pk)
    assert chat(bot, "where is my parcel") == "fake reply to: where is my parcel"
    heartbeat_moves(bot)
    assert fallbacks() == 0

    lifecycle.request_stop(bot, actor="test")
    wait_for(lambda: status_of(bot) == Status.STOPPED, timeout=30, what="forked bot stopped")
    wait_for(lambda: not pid_alive(pid), timeout=5, what="forked runner gone")
    stopped = AuditLog.objects.get(target="forked", action="bot.stopped")
    assert stopped.details["killed"] is False  # it ended on SIGTERM within the grace
    assert pid_alive(zygote) and templates("host-a") == [zygote]  # and its template serves on


def test_a_forked_runner_is_recognised_after_a_worker_restart_and_a_reused_pid_is_not(
    bot_worker, reconcile_ticker, settings
):
    worker = bot_worker("host-a")
    template_ready(worker)
    first = start(Bot.objects.create(name="First", slug="first"))
    second = start(Bot.objects.create(name="Second", slug="second"))
    settings.HOSTNAME = "host-a"
    # Siblings of one template: their environments are the same (the template's); their marks are not.
    assert Path(f"/proc/{first.pid}/environ").read_bytes() == Path(f"/proc/{second.pid}/environ").read_bytes()
    assert is_runner(first.pid, first.pk) and not is_runner(second.pid, first.pk)

    worker.kill()
    assert pid_alive(first.pid) and pid_alive(second.pid)
    worker = bot_worker("host-a")
    reconcile_ticker(0.3)
    heartbeat_moves(first)
    wait_for(lambda: "{'ok': 2}" in worker.proc.output(), timeout=30, what="both bots found healthy")
    assert (status_of(first), status_of(second)) == (Status.RUNNING, Status.RUNNING)
    assert not AuditLog.objects.filter(action__in=["bot.crash", "bot.stray_killed", "bot.orphan_killed"]).exists()

    # The first bot's runner dies and its pid is "reused" by its sibling, the second bot's runner
    # (under the row lock, so that no reconcile sees the first runner dead with its own pid).
    with transaction.atomic():
        Bot.objects.select_for_update().get(pk=first.pk)
        os.killpg(first.pid, signal.SIGKILL)
        Bot.objects.filter(pk=first.pk).update(pid=second.pid)
    wait_for(lambda: AuditLog.objects.filter(target="first", action="bot.crash").exists(), timeout=30, what="crash")
    wait_for(lambda: status_of(first) == Status.RUNNING, timeout=30, what="first restarted")
    assert first.pid != second.pid
    assert pid_alive(second.pid) and status_of(second) == Status.RUNNING  # never signalled
    heartbeat_moves(second)


def test_killing_the_template_spares_running_bots_and_the_next_start_falls_back_to_exec(bot_worker):
    worker = bot_worker("host-a")
    zygote = template_ready(worker)
    running = start(Bot.objects.create(name="Running", slug="running"))

    os.killpg(zygote, signal.SIGKILL)  # its whole group: the runners are not in it
    wait_for(lambda: not pid_alive(zygote), timeout=5, what="template gone")
    assert pid_alive(running.pid)
    heartbeat_moves(running)
    assert chat(running, "still there") == "fake reply to: still there"

    late = start(Bot.objects.create(name="Late", slug="late"))
    assert b"runbot" in Path(f"/proc/{late.pid}/cmdline").read_bytes()  # exec'd, as before the template
    assert chat(late, "hello") == "fake reply to: hello"
    assert fallbacks("unavailable") == 1
    # The fallback started a new template: the start after it is forked again.
    new = template_ready(worker, count=2)
    assert new != zygote
    forked = start(Bot.objects.create(name="Forked again", slug="forked-again"))
    assert parent_of(forked.pid) == new
    assert fallbacks("unavailable") == 1


def test_a_template_started_before_a_settings_change_is_replaced(bot_worker):
    worker = bot_worker("host-a")
    old = template_ready(worker)
    before = start(Bot.objects.create(name="Before", slug="before"))
    worker.proc.stop()

    # A deploy: the worker comes back with another setting its runners read.
    worker = bot_worker("host-a", BOT_CHAT_TIMEOUT="90")
    new = template_ready(worker, count=2)  # both log to the same file
    wait_for(lambda: not pid_alive(old), timeout=10, what="stale template gone")
    assert new != old
    after = start(Bot.objects.create(name="After", slug="after"))
    assert parent_of(after.pid) == new
    assert sum(fallbacks(reason) for reason in ("unavailable", "replacing", "failed")) == 0
    assert pid_alive(before.pid) and status_of(before) == Status.RUNNING  # replacing it stopped no bot
    heartbeat_moves(before)


def test_a_start_request_with_another_fingerprint_replaces_the_template_first(bot_worker, settings, monkeypatch):
    worker = bot_worker("host-a")
    old = template_ready(worker)
    # The worker's own start path, run here with the worker's environment plus a changed setting.
    for name, value in {**worker.env, "BOT_CHAT_TIMEOUT": "75"}.items():
        monkeypatch.setenv(name, value)
    settings.HOSTNAME, settings.VAR_DIR = "host-a", Path(worker.env["DEIA_VAR_DIR"])
    settings.LOG_DIR = Path(worker.env["LOG_DIR"])
    from bots.lifecycle import template
    from tests.support.procs import free_port

    bot = Bot.objects.create(name="Direct", slug="direct")
    port = free_port()
    spawned = template.fork_runner(bot, port, "s3cret")
    # The pid comes back once the child carries its runner's tag, never the template's.
    assert process_tag(spawned.pid) == f"host-a/{connection.settings_dict['NAME']}/{bot.pk}"
    new = parent_of(spawned.pid)
    assert new != old
    # The stale one lets go of its socket and lock before it has finished exiting.
    wait_for(lambda: not pid_alive(old), timeout=10, what="the stale template to exit")
    assert templates("host-a") == [new]
    wait_for(lambda: health(port) and health(port)["pid"] == spawned.pid, timeout=30, what="forked runner healthy")


def test_a_forked_runner_serves_the_bot_its_worker_read_without_reading_the_row_again(
    bot_worker, settings, monkeypatch
):
    """The fork request carries the bot's row as the worker read it under the bot's lock: the
    runner serves without a database read first (the slug differs here to tell them apart)."""
    worker = bot_worker("host-a")
    template_ready(worker)
    for name, value in worker.env.items():
        monkeypatch.setenv(name, value)
    settings.HOSTNAME, settings.VAR_DIR = "host-a", Path(worker.env["DEIA_VAR_DIR"])
    settings.LOG_DIR = Path(worker.env["LOG_DIR"])
    from bots.lifecycle import template
    from tests.support.procs import free_port

    bot = Bot.objects.create(name="As read", slug="as-stored")
    bot.slug = "as-read-by-the-worker"
    port = free_port()
    spawned = template.fork_runner(bot, port, "s3cret")
    (current,) = templates("host-a")
    assert parent_of(spawned.pid) == current
    wait_for(lambda: health(port) and health(port)["pid"] == spawned.pid, timeout=30, what="forked runner healthy")
    assert health(port)["bot"] == "as-read-by-the-worker"
    assert health(port)["bot_id"] == bot.pk


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def local_ports(inodes: set[str]) -> set[int]:
    """Local TCP ports of the sockets with these inodes (/proc/net/tcp and tcp6)."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_a_forked_runner_holds_no_database_connection_of_its_template(bot_worker):
    worker = bot_worker("host-a")
    zygote = template_ready(worker)
    bot = start(Bot.objects.create(name="Own connections", slug="own-connections"))
    heartbeat_moves(bot)  # it has used the database

    assert os.listdir(f"/proc/{zygote}/task") == [str(zygote)]  # no thread to lose in a fork
    assert not socket_inodes(bot.pid) & socket_inodes(zygote)  # no socket shared with the template
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid, client_port FROM pg_stat_activity WHERE datname = current_database()")
        backends = dict((port, backend) for backend, port in cursor.fetchall())
    runner_backends = {backends[p] for p in local_ports(socket_inodes(bot.pid)) if p in backends}
    template_backends = {backends[p] for p in local_ports(socket_inodes(zygote)) if p in backends}
    assert runner_backends  # its heartbeats went through sessions of its own
    assert not runner_backends & template_backends


def test_a_forked_child_drops_its_parents_connections_without_ending_their_sessions(transactional_db):
    from deia.adapters.django import forget_inherited_connections

    def backend_pid() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    parent = backend_pid()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the session its first query used, then exit without cleanup
        code = 1
        try:
            os.close(read)
            forget_inherited_connections()
            os.write(write, str(backend_pid()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = int(pipe.read() or 0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child and child != parent  # a session of its own, not its parent's socket
    assert backend_pid() == parent  # the parent's session is intact and still answers
