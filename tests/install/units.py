"""Start a systemd unit's ExecStart the way systemd would, without systemd (for the install test).

Reads the [Service] keys that shape the process: User, Group, WorkingDirectory, Environment,
EnvironmentFile, UnsetEnvironment, the State/Logs/RuntimeDirectory folders, ExecStartPre and
ExecStart; %H and $VAR / ${VAR} are expanded as systemd expands them. Paths are re-rooted
under a prefix when the unit names a path outside it (Debian's own units name /etc/default/...).
"""

from __future__ import annotations

import os
import pwd
import shlex
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

# systemd's environment for a system service before the unit's own settings.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def directives(path: Path) -> dict[str, list[str]]:
    """Section.Directive -> values, in order, of a unit file (a directive may repeat)."""
    values: dict[str, list[str]] = {}
    section = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{section}.{key}", []).append(value)
    return values


@dataclass
class Unit:
    path: Path
    values: dict[str, list[str]]

    @classmethod
    def read(cls, path: Path) -> Unit:
        return cls(path, directives(path))

    def all(self, key: str) -> list[str]:
        return self.values.get(f"Service.{key}", [])

    def get(self, key: str, default: str | None = None) -> str | None:
        found = self.all(key)
        return found[-1] if found else default

    @property
    def user(self) -> str | None:
        return self.get("User")

    @property
    def group(self) -> str | None:
        return self.get("Group") or self.user


def rooted(path: str, prefix: Path) -> Path:
    return Path(path) if path.startswith(str(prefix)) else Path(f"{prefix}{path}")


def read_env_file(path: Path) -> dict[str, str]:
    """systemd's EnvironmentFile: KEY=VALUE lines, # comments, one level of quotes stripped."""
    env = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def environment(unit: Unit, prefix: Path) -> dict[str, str]:
    env = {"PATH": BASE_PATH, "LANG": "C.UTF-8"}
    if unit.user:
        entry = pwd.getpwnam(unit.user)
        env.update(HOME=entry.pw_dir, USER=unit.user, LOGNAME=unit.user, SHELL=entry.pw_shell)
    for assignments in unit.all("Environment"):
        for assignment in shlex.split(assignments):
            key, _, value = assignment.partition("=")
            env[key] = value
    # Files are read after Environment= and win over it.
    for name in unit.all("EnvironmentFile"):
        optional = name.startswith("-")
        path = rooted(name.lstrip("-"), prefix)
        if path.exists() or not optional:
            env.update(read_env_file(path))
    for names in unit.all("UnsetEnvironment"):
        for name in names.split():
            env.pop(name, None)
    return env


def command(line: str, env: dict[str, str]) -> list[str]:
    """An Exec line's argv: %H, then $VAR split into words and ${VAR} kept whole."""
    line = line.lstrip("-@+!").replace("%H", socket.gethostname()).replace("%%", "%")
    argv: list[str] = []
    for word in shlex.split(line):
        if word.startswith("${") and word.endswith("}"):
            argv.append(env.get(word[2:-1], ""))
        elif word.startswith("$") and word[1:].isidentifier():
            argv.extend(env.get(word[1:], "").split())
        else:
            argv.append(word)
    return argv


def as_user(unit: Unit) -> dict:
    """Popen's umask, and user/group when the test may switch users (root)."""
    options: dict = {"umask": int(unit.get("UMask", "0022"), 8)}
    if os.geteuid() == 0 and unit.user:
        options.update(user=unit.user, group=unit.group, extra_groups=[])
    return options


def prepare_directories(unit: Unit, prefix: Path) -> None:
    """StateDirectory=, LogsDirectory=, RuntimeDirectory=: made and owned by the unit's user."""
    entry = pwd.getpwnam(unit.user) if unit.user else None
    for key, base in (("StateDirectory", "/var/lib"), ("LogsDirectory", "/var/log"), ("RuntimeDirectory", "/run")):
        mode = int(unit.get(f"{key}Mode", "0755"), 8)
        parent = rooted(base, prefix)
        if not parent.exists():  # a folder of the prefix only: /run, /var/log as the host has them
            parent.mkdir(parents=True)
            parent.chmod(0o755)
        for name in (unit.get(key) or "").split():
            folder = rooted(f"{base}/{name}", prefix)
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(mode)
            if entry and os.geteuid() == 0:
                os.chown(folder, entry.pw_uid, entry.pw_gid)


def run_pre(unit: Unit, env: dict[str, str], cwd: Path) -> None:
    for line in unit.all("ExecStartPre"):
        result = subprocess.run(command(line, env), env=env, cwd=cwd, capture_output=True, text=True, **as_user(unit))
        assert result.returncode == 0 or line.startswith("-"), f"{unit.path.name} ExecStartPre {line}: {result}"
