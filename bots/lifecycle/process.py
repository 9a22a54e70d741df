"""The operating-system side of the lifecycle: ports, spawning, probing and killing runners.

Nothing here touches the database. Processes are recognised by a tag, "<host>/<database>/<bot
id>", so a pid reused by an unrelated program, or a runner of another installation sharing
this machine (other test databases, a second "host" on one machine), is never signalled.
A runner started by exec carries the tag in its environment (DEIA_RUNNER_TAG); one forked
by the host's runner template (bots.lifecycle.template) has its template's environment, so
it carries the tag in its process title instead ("deia-runner <tag>", /proc/<pid>/cmdline),
set before it does anything else. The title wins over the environment; the template's own
tag ends in "/template" and names no bot.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connection

TAG_VAR = "DEIA_RUNNER_TAG"
SECRET_ENV = "DEIA_BOT_SECRET"  # noqa: S105 - the variable's name; the runner pops it at start
GENERATION_ENV = "DEIA_BOT_GENERATION"  # the start's Bot.generation: the runner's fencing token
# What a forked runner is given of its bot's row with its fork request (bots.lifecycle.template),
# instead of reading the row before it serves: all the runner reads of it at start.
RUNNER_BOT_FIELDS = ("slug", "backend", "model_name", "system_prompt")

# A runner gets only the environment it reads (deia/settings.py through settings_runner),
# never a copy of the worker's: no broker or cache URL, no cloud keys, no admin password,
# no metrics token. A bug that prints a runner's environment, or a model that talks it
# into revealing it, then has little to give away.
RUNNER_ENV_NAMES = frozenset(
    {
        *("PATH", "LANG", "LANGUAGE", "TZ", "HOME"),
        *("PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"),
        *("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "DEBUG", "METRICS_ALLOWED_CIDRS"),
        # settings.py refuses to load without a key when DEBUG is off.
        *("SECRET_KEY", "SECRET_KEY_FILE"),
        # The runner's recognition tag and the per-start secret it asks of every chat.
        *(TAG_VAR, "DEIA_BOT_SECRET", GENERATION_ENV),
        # What BOT_FENCE_SECONDS is checked against (deia/settings.py): the worker's values.
        *("HOST_HEARTBEAT_SECONDS", "HOST_LEASE_SECONDS"),
    }
)
RUNNER_ENV_PREFIXES = ("LC_", "DEIA_", "BOT_", "LLM_", "OLLAMA_", "OPENAI_", "LOG_")
# Matched by a prefix above, but no business of a runner.
RUNNER_ENV_DENIED = frozenset({"DEIA_ADMIN_PASSWORD", "DEIA_ADMIN_PASSWORD_FILE", "DEIA_WEB_MASTER_PID"})


def runner_env(source: dict[str, str]) -> dict[str, str]:
    """The variables of `source` a runner needs: the allowlist above, nothing else."""
    return {
        name: value
        for name, value in source.items()
        if (name in RUNNER_ENV_NAMES or name.startswith(RUNNER_ENV_PREFIXES)) and name not in RUNNER_ENV_DENIED
    }


def runner_tag(bot_id: int | str) -> str:
    return f"{settings.HOSTNAME}/{connection.settings_dict['NAME']}/{bot_id}"


# Process titles (setproctitle) of a forked runner and of the template: "<title> <tag>".
RUNNER_TITLE, TEMPLATE_TITLE = "deia-runner", "deia-runner-template"
TEMPLATE_ID = "template"  # the template's tag ends in it instead of a bot id


# --- ports --------------------------------------------------------------------------
def can_bind(port: int, host: str | None = None) -> bool:
    """True if nothing listens on host:port now (bind with SO_REUSEADDR, as servers do)."""
    host = host or settings.BOT_BIND_HOST
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(taken: set[int], port_range: tuple[int, int] | None = None) -> int | None:
    """The lowest port of the range that no bot holds and no program listens on."""
    low, high = port_range or settings.BOT_PORT_RANGE
    for port in range(low, high + 1):
        if port not in taken and can_bind(port):
            return port
    return None


# --- processes ----------------------------------------------------------------------
def pid_alive(pid: int | None) -> bool:
    """True if pid runs (a zombie counts as dead: it only waits for its parent)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def process_tag(pid: int) -> str | None:
    """The process's tag: from its title if it set one (forked runners, the template), else its environment."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\0", 1)[0].split()
    except OSError:
        return None
    if len(words) >= 2 and words[0].decode(errors="replace") in (RUNNER_TITLE, TEMPLATE_TITLE):
        return words[1].decode(errors="replace")
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    prefix = f"{TAG_VAR}=".encode()
    for item in raw.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix) :].decode(errors="replace")
    return None


def is_runner(pid: int | None, bot_id: int) -> bool:
    """pid is alive and is this installation's runner of this bot (not a reused pid)."""
    return bool(pid) and pid_alive(pid) and process_tag(pid) == runner_tag(bot_id)


def runner_pids(bot_id: int | None = None) -> dict[int, int]:
    """{pid: bot id} of this host's live runners (of one bot, or all), from /proc."""
    prefix = runner_tag(0).rsplit("/", 1)[0] + "/"
    found: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        tag = process_tag(pid)
        if not tag or not tag.startswith(prefix) or not pid_alive(pid):
            continue
        owner = tag[len(prefix) :]
        if not owner.isdigit():
            continue  # the runner template
        owner = int(owner)
        # Only the group leader (the runner itself) stands for the process group.
        if (bot_id is None or owner == bot_id) and _pgid(pid) == pid:
            found[pid] = owner
    return found


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def kill_group(pid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal the runner's process group (it leads its own session). False if it is gone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def reap_children() -> None:
    """Collect exit statuses of runners this worker process spawned, so none lingers as a zombie.

    Each status is noted (exits_dir()) for whichever worker process reports the crash: the
    runner's parent is the pool process that started it, often not the one that notices.
    """
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _note_exit(pid, status)


# Notes older than this belong to runners nobody reported as crashed (stopped ones).
EXIT_NOTE_MAX_AGE = 24 * 3600


def exits_dir() -> Path:
    return Path(settings.LOG_DIR) / "exits"


def _note_exit(pid: int, status: int) -> None:
    folder = exits_dir()
    with contextlib.suppress(OSError):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        (folder / str(pid)).write_text(str(status))
        cutoff = time.time() - EXIT_NOTE_MAX_AGE
        for old in folder.iterdir():
            if old.stat().st_mtime < cutoff:
                old.unlink(missing_ok=True)


def _zombie_status(pid: int) -> int | None:
    """A dead runner's wait status while it waits for its parent (/proc/<pid>/stat field 52)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[-1].split()
    except OSError:
        return None
    # fields[0] is field 3 (state); the exit code is field 52.
    return int(fields[49]) if len(fields) > 49 and fields[0] == "Z" else None


def exit_status(pid: int | None) -> int | str | None:
    """How a dead runner ended: its exit code, the signal's name ("SIGKILL"), or None if unknown."""
    if not pid:
        return None
    status = _zombie_status(pid)
    note = exits_dir() / str(pid)
    with contextlib.suppress(OSError, ValueError):
        status = int(note.read_text()) if status is None else status
    with contextlib.suppress(OSError):
        note.unlink(missing_ok=True)
    if status is None:
        return None
    if os.WIFSIGNALED(status):
        return signal.Signals(os.WTERMSIG(status)).name
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else None


def terminate(pid: int, grace: float) -> bool:
    """SIGTERM the group, wait up to `grace` seconds, then SIGKILL it. True if it had to be killed."""
    kill_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        reap_children()
        if not pid_alive(pid):
            break
        time.sleep(0.02)
    killed = pid_alive(pid)
    # Also reaches children the runner left behind in its group.
    kill_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        reap_children()
        time.sleep(0.01)
    reap_children()
    return killed


# --- spawning and probing -----------------------------------------------------------
def log_path(slug: str) -> Path:
    return Path(settings.LOG_DIR) / f"bot-{slug}.log"


def last_lines(path: Path, count: int = 5, offset: int = 0) -> list[str]:
    """The last `count` non-empty lines of a runner's log after `offset`, each cut at 500 characters."""
    try:
        with open(path, "rb") as f:
            f.seek(max(offset, f.seek(0, os.SEEK_END) - 16384))
            lines = [line.strip() for line in f.read().splitlines() if line.strip()]
    except OSError:
        return []
    return [line.decode(errors="replace")[:500] for line in lines[-count:]]


def exit_code_of(pid: int) -> int | None:
    """A runner that is not our child: None while it runs, then its exit code (-signal; -1 if unknown)."""
    if pid_alive(pid):
        return None
    status = _zombie_status(pid)
    with contextlib.suppress(OSError, ValueError):
        status = int((exits_dir() / str(pid)).read_text()) if status is None else status
    if status is None:
        return -1
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


@dataclass
class Spawned:
    pid: int
    log: Path
    log_offset: int
    popen: subprocess.Popen | None = None  # None: forked by the runner template, not our child

    def exit_code(self) -> int | None:
        return self.popen.poll() if self.popen is not None else exit_code_of(self.pid)

    def last_line(self) -> str:
        """The runner's last output line since it was spawned (its one-line start-up error)."""
        lines = last_lines(self.log, 1, self.log_offset)
        return lines[-1] if lines else ""


def spawn_runner(bot_id: int, slug: str, port: int, secret: str, generation: int = 0) -> Spawned:
    """Start `manage.py runbot` in its own session, detached from this worker's signals.

    The chat secret goes in the environment (the runner removes it from its own at once),
    never on the command line, where `ps` would show it to every local user.
    """
    path = log_path(slug)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = runner_process_env(runner_tag(bot_id))
    env[SECRET_ENV] = secret
    env[GENERATION_ENV] = str(generation)
    args = [sys.executable, str(settings.BASE_DIR / "manage.py"), "runbot", str(bot_id), "--port", str(port)]
    with open(path, "ab") as log:
        offset = log.tell()
        popen = subprocess.Popen(
            args,
            cwd=settings.BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    return Spawned(popen.pid, path, offset, popen)


def runner_process_env(tag: str) -> dict[str, str]:
    """The environment of a runner (or of the template that forks runners) tagged `tag`."""
    env = runner_env(dict(os.environ))
    env.pop("LOG_SYSLOG_PREFIX", None)  # its output goes to a file, not to the journal
    # A runner serves few connections; a small pool per bot keeps 100 bots within max_connections.
    env["DB_POOL_MAX_SIZE"] = str(settings.RUNNER_DB_POOL_MAX_SIZE)
    # The worker's own value, defaulted or not: its runners fence themselves as it expects.
    env["BOT_FENCE_SECONDS"] = repr(settings.BOT_FENCE_SECONDS)
    env[TAG_VAR] = tag
    return env


def probe_host() -> str:
    host = settings.BOT_BIND_HOST
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


@functools.cache
def _probe_client() -> httpx.Client:
    """One client per process: httpx.get() builds one per call, CA bundle and all, which cost
    more than the start it polls for (hundreds of ms on a busy host). No keep-alive: every
    probe is a new connection, so a pooled socket never answers for a runner that is gone."""
    return httpx.Client(trust_env=False, limits=httpx.Limits(max_keepalive_connections=0))


def health(port: int, timeout: float = 1.0) -> dict | None:
    """The runner's /health document, or None if nothing sane answers."""
    host = probe_host()
    url = f"http://[{host}]:{port}/health" if ":" in host else f"http://{host}:{port}/health"
    try:
        response = _probe_client().get(url, timeout=timeout)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict):
            return body
    return None


def is_healthy(port: int | None, bot_id: int, pid: int | None, timeout: float = 1.0) -> bool:
    """The bot itself answers on its port: bot id and pid match, not some other program."""
    if not port:
        return False
    body = health(port, timeout)
    return bool(body) and body.get("bot_id") == bot_id and (pid is None or body.get("pid") == pid)


def wait_ready(spawned: Spawned, bot_id: int, port: int, deadline: float) -> str | None:
    """Poll until the runner answers /health. None when ready, else why it failed."""
    interval = 0.01
    while True:
        code = spawned.exit_code()
        if code is not None:
            line = spawned.last_line()
            return f"runner exited with code {code}" + (f": {line}" if line else "")
        if is_healthy(port, bot_id, spawned.pid, timeout=0.5):
            return None
        if time.monotonic() >= deadline:
            return f"runner not ready within {settings.BOT_START_TIMEOUT:g} s"
        time.sleep(interval)
        interval = min(interval * 1.5, 0.02)  # a refused connect costs little; readiness is seen sooner
