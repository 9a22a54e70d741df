"""Run the test suite as shards side by side: `make test` calls this with one command per shard.

Each shard is a whole pytest run on its own database, Redis database, bot port range and
var directory (the isolation that lets two checkouts test at once), so they share
nothing but the servers. Most tests spend their time waiting on the processes they
start, so two shards on two cores take far less than one run of everything.

The first shard writes to the terminal as it goes; the others write to a log file each,
shown in full once they end. The exit status is 0 only when every shard passed. Ctrl-C
reaches every shard (their finalizers run) and is then reported like a failure; a TERM or
HUP sent to this script (make or CI giving up) is passed on to every shard.

    python scripts/test_shards.py LOG_DIR -- COMMAND... [-- COMMAND...]
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path


def split_commands(argv: list[str]) -> tuple[Path, list[list[str]]]:
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit("usage: test_shards.py LOG_DIR -- COMMAND... [-- COMMAND...]")
    commands: list[list[str]] = [[]]
    for word in argv[2:]:
        if word == "--":
            commands.append([])
        else:
            commands[-1].append(word)
    if not all(commands):
        raise SystemExit("test_shards.py: an empty command between two --")
    return Path(argv[0]), commands


def main(argv: list[str]) -> int:
    log_dir, commands = split_commands(argv)
    log_dir.mkdir(parents=True, exist_ok=True)
    logs = [log_dir / f"shard-{n}.log" for n in range(2, len(commands) + 1)]
    began = time.monotonic()
    procs = [subprocess.Popen(commands[0])]
    for command, log in zip(commands[1:], logs, strict=True):
        with log.open("wb") as out:
            procs.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))

    def pass_on(signum: int, _frame) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, pass_on)
    codes: list[int | None] = [None] * len(procs)
    interrupted = False
    while None in codes:
        try:
            for n, proc in enumerate(procs):
                codes[n] = proc.wait() if codes[n] is None else codes[n]
        except KeyboardInterrupt:  # the terminal's Ctrl-C reached every shard too: wait for them
            interrupted = True
    for n, log in enumerate(logs, start=2):
        print(f"\n===== shard {n} of {len(procs)} ({log}) =====", flush=True)
        sys.stdout.buffer.write(log.read_bytes())
    print(f"\n===== {len(procs)} shards in {time.monotonic() - began:.0f} s =====")
    for n, (command, code) in enumerate(zip(commands, codes, strict=True), start=1):
        what = shlex.join(command[command.index("pytest") + 1 :] if "pytest" in command else command)
        print(f"shard {n}: {'passed' if code == 0 else f'FAILED (exit {code})'}: {what}")
    return 130 if interrupted else int(any(codes))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
