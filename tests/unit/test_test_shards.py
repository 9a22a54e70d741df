"""scripts/test_shards.py: `make test`'s shards run side by side and any failure fails the run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.procs import wait_for

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "test_shards.py"


def run(tmp_path: Path, *commands: str) -> subprocess.CompletedProcess:
    args = [sys.executable, str(SCRIPT), str(tmp_path / "logs")]
    for code in commands:
        args += ["--", sys.executable, "-c", code]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_every_shard_passing_is_exit_0_and_the_second_shards_output_is_shown(tmp_path: Path) -> None:
    done = run(tmp_path, "print('first shard says hi')", "print('second shard says hi')")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "first shard says hi" in done.stdout
    assert "second shard says hi" in done.stdout
    assert (tmp_path / "logs" / "shard-2.log").read_text() == "second shard says hi\n"
    assert "shard 1: passed" in done.stdout and "shard 2: passed" in done.stdout


def test_one_failing_shard_fails_the_run_and_is_named(tmp_path: Path) -> None:
    done = run(tmp_path, "pass", "import sys; print('broken'); sys.exit(3)")
    assert done.returncode == 1
    assert "shard 1: passed" in done.stdout
    assert "shard 2: FAILED (exit 3)" in done.stdout
    assert "broken" in done.stdout


def test_the_shards_run_at_the_same_time(tmp_path: Path) -> None:
    # Each waits until the other has written its mark: run one after the other, neither could finish.
    wait_for = (
        "import pathlib, time, sys\n"
        "d = pathlib.Path({folder!r})\n"
        "(d / {mine!r}).touch()\n"
        "deadline = time.monotonic() + 20\n"
        "while not (d / {theirs!r}).exists():\n"
        "    assert time.monotonic() < deadline, 'the other shard never ran alongside'\n"
        "    time.sleep(0.02)\n"
    )
    folder = str(tmp_path)
    done = run(
        tmp_path,
        wait_for.format(folder=folder, mine="a", theirs="b"),
        wait_for.format(folder=folder, mine="b", theirs="a"),
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_call_without_commands_is_one_line_and_exit_1(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.strip() == "usage: test_shards.py LOG_DIR -- COMMAND... [-- COMMAND...]"


def test_a_term_to_the_runner_reaches_every_shard(tmp_path: Path) -> None:
    # make and CI stop a run with SIGTERM: no shard may go on alone, holding its database and ports.
    shard = "import os, pathlib, time; pathlib.Path({mark!r}).write_text(str(os.getpid())); time.sleep(60)"
    marks = [tmp_path / "a.pid", tmp_path / "b.pid"]
    args = [sys.executable, str(SCRIPT), str(tmp_path / "logs")]
    for mark in marks:
        args += ["--", sys.executable, "-c", shard.format(mark=str(mark))]
    runner = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pids: list[int] = []
    try:
        wait_for(
            lambda: all(m.exists() and m.read_text() for m in marks) or runner.poll() is not None,
            timeout=30,
            what="both shards to start",
        )
        assert runner.poll() is None, "the runner ended before its shards started"
        pids = [int(m.read_text()) for m in marks]
        runner.send_signal(signal.SIGTERM)
        out, _ = runner.communicate(timeout=30)
    finally:
        runner.kill()
        for pid in pids:  # only if the runner left them running (the failure this test is about)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert runner.returncode == 1
    assert out.count("FAILED (exit -15)") == 2, out
    # The runner waited for (and so reaped) both: neither runs on.
    assert [pid for pid in pids if os.path.exists(f"/proc/{pid}")] == []
