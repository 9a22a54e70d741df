"""The names a documentation page mentions, and the names the code has.

Extraction is by explicit regular expressions over the whole page (prose and blocks):

- commands: `manage.py <name>` and `deia-manage <name>`, plus the first backticked word of
  the first cell of a table whose header names a "command"; the `--options` written after a
  command on the same line (up to a `|`, `;`, `#`, `&&` or the end of the code span), and,
  for a command with subcommands (botctl, apitoken), the word after it (`a|b|c` alternatives);
  and a code span written like a command line without manage.py (`name --option`,
  `name <arg>`, `name a|b`), other programs (NOT_COMMANDS) aside;
- metrics: `deia_…` and `django_…` words not part of a recording rule name (no `:` around
  them); `name_*` is a prefix that must match some metric;
- alerts: CamelCase words starting with Deia, Postgres, Redis or Host, and `Watchdog`;
- dashboards: "<Title Case> dashboard";
- files: paths starting with deploy/, docs/, bots/, ops/, deia/, tests/, bench/, scripts/
  or templates/ (not inside a longer path or URL); `{a,b}` alternatives and `*`/`<…>` as globs;
- settings: UPPER_CASE words with an underscore (environment variables and settings), not
  inside a path or a file name; NOT_SETTINGS lists the few that are something else.

What exists: management commands and their parsers (Django's own, so `--help` is what the
docs are held to); metric families of a web /metrics scrape and of the runner's registry
(bots.metrics), counters with `_total` and histograms with `_bucket/_count/_sum`; alert
names of deploy/prometheus/rules; dashboard titles of deploy/grafana/dashboards; files in
the repository; a setting or environment variable the code reads or sets (a quoted
"NAME", `NAME =` / `NAME=`, or a shell `${NAME:-…}` in deia/, bots/, ops/, deploy/ and scripts/).
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import re
from dataclasses import dataclass, field
from functools import cache

import yaml

from .pages import REPO

COMMAND = re.compile(r"(?:manage\.py|deia-manage)\s+(?P<name>[a-z][a-z_]+)(?P<rest>[^`|;#&\n]*)")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
METRIC = re.compile(r"(?<![\w:/.-])(?:deia|django)_[a-z0-9_]+(?![\w:])(?P<star>\*)?")
ALERT = re.compile(r"\b(?:(?:Deia|Postgres|Redis|Host)[A-Z][A-Za-z0-9]+|Watchdog)\b")
DASHBOARD = re.compile(r"\b(?P<title>(?:[A-Z][a-z]+ )+)dashboard")
PATH = re.compile(r"(?<![\w./-])(?P<path>(?:deploy|docs|bots|ops|deia|tests|bench|scripts|templates)/[\w./{},*<>$-]*)")
SETTING = re.compile(r"(?<![\w/.$-])[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+(?![\w-]|\.\w)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
# `name --option …`, `name <arg> …`, `name sub|sub …`: a command written without manage.py.
SPAN_COMMAND = re.compile(r"^(?P<name>[a-z][a-z_]+)(?P<rest> (?:\[?--|<[a-z]|[a-z]+\|).*)$")
NOT_COMMANDS = {"pg_dump", "pg_restore", "journalctl"}  # other programs written the same way

# UPPER_CASE words the docs use that are not settings or environment variables.
NOT_SETTINGS = {
    "DEIA_TOKEN",  # the runbooks' shell variable holding an operator's API token
    "AF_UNIX",  # address families of the systemd units' RestrictAddressFamilies
    "AF_INET",
    "AF_INET6",
    "ON_ERROR_STOP",  # a psql variable
    "PYTEST_ARGS",  # the Makefile's variables
    "SHARD_B",
    "REDIS_PASSWORD",  # redis_exporter's environment, not ours
}
# deia_/django_ words that are not metrics: the restore check's scratch database, the
# guide's guessed database name, the second test shard's database, the token file of
# docs/OPS_BUNDLE.md, a pytest-django fixture.
NOT_METRICS = {
    "deia_restorecheck_",
    "deia_b",
    "deia_prod",
    "deia_metrics_token",
    "django_assert_max_num_queries",
    "django_celery_beat",  # an app label in an audit action (django_celery_beat.periodictask.update)
}


@dataclass
class Mentions:
    commands: set[str] = field(default_factory=set)
    options: set[tuple[str, str, str]] = field(default_factory=set)  # (command, subcommand or "", --option)
    subcommands: set[tuple[str, str]] = field(default_factory=set)
    metrics: set[str] = field(default_factory=set)
    alerts: set[str] = field(default_factory=set)
    dashboards: set[str] = field(default_factory=set)
    paths: set[str] = field(default_factory=set)
    settings: set[str] = field(default_factory=set)


def _command_line(mentions: Mentions, name: str, rest: str) -> None:
    mentions.commands.add(name)
    words = rest.split()
    sub = ""
    if name in commands_with_subcommands() and words and re.fullmatch(r"[a-z][a-z|-]*", words[0]):
        for alternative in words[0].split("|"):
            mentions.subcommands.add((name, alternative))
        sub = words[0] if "|" not in words[0] else ""
    for option in OPTION.findall(rest):
        mentions.options.add((name, sub, option))


def _table_commands(mentions: Mentions, text: str) -> None:
    in_table = False
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else []
        if not cells:
            in_table = False
            continue
        if not in_table:
            in_table = "command" if any("ommand" in c for c in cells[:1]) else "other"
            continue
        if in_table == "command" and (span := CODE_SPAN.search(cells[0])):
            first, _, rest = span.group(1).partition(" ")
            for name in first.split("/"):
                if re.fullmatch(r"[a-z][a-z_]+", name):
                    _command_line(mentions, name, rest)
            for other in CODE_SPAN.findall(cells[0])[1:]:
                if re.fullmatch(r"[a-z][a-z_]+", other):
                    mentions.commands.add(other)


def mentions_in(text: str) -> Mentions:
    found = Mentions()
    for match in COMMAND.finditer(text):
        _command_line(found, match["name"], match["rest"])
    _table_commands(found, text)
    for span in CODE_SPAN.findall(text):
        if (match := SPAN_COMMAND.match(span)) and match["name"] not in NOT_COMMANDS:
            _command_line(found, match["name"], match["rest"])
    for match in METRIC.finditer(text):
        found.metrics.add(match.group(0))
    found.alerts.update(ALERT.findall(text))
    found.dashboards.update(m["title"].strip() for m in DASHBOARD.finditer(text))
    for match in PATH.finditer(text):
        found.paths.add(match["path"].rstrip(".,:;)"))
    found.settings.update(SETTING.findall(text))
    return found


# --- what exists ------------------------------------------------------------------------
@cache
def command_names() -> frozenset[str]:
    from django.core.management import get_commands

    return frozenset(get_commands())


def command_help(name: str, *sub: str) -> str:
    """The --help text of a command (or of one of its subcommands), from Django's own parser."""
    from django.core.management import get_commands, load_command_class

    command = load_command_class(get_commands()[name], name)
    parser = command.create_parser("manage.py", name)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        parser.parse_args([*sub, "--help"])
    return out.getvalue()


@cache
def commands_with_subcommands() -> frozenset[str]:
    return frozenset({"botctl", "apitoken", "host"})


def subcommands(name: str) -> set[str]:
    usage = re.search(r"\{([a-z,-]+)\}", command_help(name))
    return set(usage.group(1).split(",")) if usage else set()


def metric_names(families: list[tuple[str, str]]) -> set[str]:
    """Sample names of (family name, type) pairs, as Prometheus stores them."""
    names = set()
    for name, kind in families:
        names.add(name)
        if kind == "counter":
            names.add(name if name.endswith("_total") else f"{name}_total")
        if kind == "histogram":
            names.update(f"{name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
    return names


@cache
def alert_names() -> frozenset[str]:
    names = set()
    for path in (REPO / "deploy" / "prometheus" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names.update(rule["alert"] for rule in group["rules"] if "alert" in rule)
    return frozenset(names)


@cache
def dashboard_titles() -> frozenset[str]:
    titles = set()
    for path in (REPO / "deploy" / "grafana" / "dashboards").glob("*.json"):
        title = json.loads(path.read_text())["title"]
        titles.update({title, title.rsplit(" - ", 1)[-1]})
    return frozenset(titles)


def path_exists(path: str) -> bool:
    pattern = re.sub(r"<[^>]*>|\$\w+", "*", path)
    alternatives = [pattern]
    while any("{" in p for p in alternatives):
        expanded = []
        for p in alternatives:
            m = re.search(r"\{([^{}]*)\}", p)
            if not m:
                expanded.append(p)
                continue
            expanded += [p[: m.start()] + option + p[m.end() :] for option in m.group(1).split(",")]
        alternatives = expanded
    for p in alternatives:
        if "*" in p:
            if not list(REPO.glob(p.rstrip("/"))):
                return False
        elif not (REPO / p).exists():
            return False
    return True


@cache
def code_text() -> str:
    sources = [REPO / "scripts", REPO / "deploy", REPO / "deia", REPO / "bots", REPO / "ops", REPO / "bench"]
    texts = []
    for root in sources:
        for path in root.rglob("*"):
            if path.is_file() and path.suffix in {".py", ".sh", ".service", ".example", ".conf", ""}:
                with contextlib.suppress(UnicodeDecodeError):
                    texts.append(path.read_text())
    return "\n".join(texts)


def setting_exists(name: str) -> bool:
    """Read or set by the code; NAME_FILE also when NAME is a secret (deia.config.Env.secret reads both)."""
    if name.endswith("_FILE") and re.search(rf"""secret\(\s*["']{name.removesuffix("_FILE")}["']""", code_text()):
        return True
    return bool(re.search(rf"""["']{name}["']|^\s*{name}\s*=|^{name}=|\$\{{{name}[:}}-]""", code_text(), re.M))


def fnmatch_any(prefix: str, names: set[str]) -> bool:
    return any(fnmatch.fnmatch(n, prefix + "*") for n in names)


def unknown_names(text: str, metrics: set[str]) -> list[str]:
    """What a text names that the code does not have, one line each."""
    found = mentions_in(text)
    problems = []
    commands = command_names()
    problems += [f"command {c!r}" for c in sorted(found.commands - commands)]
    for command, sub in sorted(found.subcommands):
        if command in commands and sub not in subcommands(command):
            problems.append(f"subcommand {command} {sub!r}")
    for command, sub, option in sorted(found.options):
        known = command in commands and sub in ("", *subcommands(command))
        if known and option not in command_help(command, *([sub] if sub else [])):
            problems.append(f"option {option} of {command}{' ' + sub if sub else ''}")
    for metric in sorted(found.metrics):
        name = metric.rstrip("*")
        if any(name.startswith(n) for n in NOT_METRICS):
            continue
        if not (fnmatch_any(name, metrics) if metric.endswith("*") else name in metrics):
            problems.append(f"metric {metric}")
    problems += [f"alert {a}" for a in sorted(found.alerts - alert_names())]
    problems += [f"dashboard {d!r}" for d in sorted(found.dashboards - dashboard_titles())]
    problems += [f"file {p}" for p in sorted(found.paths) if not path_exists(p)]
    problems += [f"setting {s}" for s in sorted(found.settings - NOT_SETTINGS) if not setting_exists(s)]
    return problems
