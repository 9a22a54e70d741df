"""The capacity page's PromQL for the web's sustained CPU, evaluated by promtool on known series."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ops.console.capacity import WEB_CPU_SUSTAINED


def test_the_sustained_web_cpu_is_the_lowest_5_minute_rate_of_the_last_30_minutes(promtool: str, tmp_path: Path):
    (tmp_path / "rules.yml").write_text("groups: []\n")
    # Two web processes: 0.5 and 0.25 cores each minute (0.75 together); the other job is not the web.
    # After 40 minutes the first drops to 0.25 cores for its last 10: the sustained figure is 0.5.
    tests = f"""
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'process_cpu_seconds_total{{job="deia-web",pid="1"}}'
        values: '0+30x40 1215+15x10'
      - series: 'process_cpu_seconds_total{{job="deia-web",pid="2"}}'
        values: '0+15x50'
      - series: 'process_cpu_seconds_total{{job="deia-bots",pid="3"}}'
        values: '0+60x50'
    promql_expr_test:
      - expr: '{WEB_CPU_SUSTAINED}'
        eval_time: 40m
        exp_samples:
          - value: 0.75
      - expr: '{WEB_CPU_SUSTAINED}'
        eval_time: 50m
        exp_samples:
          - value: 0.5
"""
    (tmp_path / "tests.yml").write_text(tests)
    done = subprocess.run(
        [promtool, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
