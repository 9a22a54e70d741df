"""The logrotate policy for the bot runners' logs parses, rotates, and names files cleanup_logs knows."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from tests.ops_bundle.tools import DEPLOY, require_tool, run

CONFIG = DEPLOY / "logrotate" / "deia"


def test_the_runner_logs_rotate_by_copy_and_truncate_into_names_cleanup_logs_matches(tmp_path: Path):
    logrotate = require_tool("logrotate")
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "bot-demo.log"
    live.write_text('{"message": "runner listening"}\n')
    # The shipped policy, pointed at a scratch folder and run as whoever runs the tests.
    text = CONFIG.read_text().replace("/var/log/deia", str(logs))
    text = re.sub(r"^\s*su .*$", "", text, flags=re.M)
    config = tmp_path / "deia.conf"
    config.write_text(text)
    check = run([logrotate, "-d", "-s", str(tmp_path / "state"), str(config)])
    assert check.returncode == 0, check.stderr
    assert "error" not in check.stderr.lower(), check.stderr
    rotated = run([logrotate, "-f", "-s", str(tmp_path / "state"), str(config)])
    assert rotated.returncode == 0, rotated.stderr
    assert live.exists() and live.stat().st_size == 0  # copytruncate: the runner keeps writing here
    names = sorted(p.name for p in logs.iterdir() if p != live)
    assert len(names) == 1 and re.fullmatch(r"bot-demo\.log\.\d{8}", names[0]), names
    assert fnmatch.fnmatch(names[0], "*.log.*")  # what `manage.py cleanup_logs` deletes when old
