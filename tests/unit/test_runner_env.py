"""The runner's environment is built from an allowlist, never copied from the worker's."""

from __future__ import annotations

from bots.lifecycle.process import runner_env


def test_only_the_variables_a_runner_reads_are_passed_on():
    worker = {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "DATABASE_URL": "postgres://deia:pw@db/deia",
        "SECRET_KEY_FILE": "/etc/deia/secret_key",
        "DEIA_VAR_DIR": "/var/lib/deia",
        "DEIA_RUNNER_TAG": "h/deia/1",
        "DEIA_BOT_SECRET": "per-start",
        "BOT_CHAT_TIMEOUT": "60",
        "LLM_RETRIES": "2",
        "OLLAMA_URL": "http://127.0.0.1:11434",
        "OPENAI_API_KEY": "sk-needed-by-openai-bots",
        "LOG_FORMAT": "text",
        "REDIS_URL": "redis://:pw@127.0.0.1:6379/0",
        "CELERY_BROKER_URL": "redis://:pw@127.0.0.1:6379/0",
        "AWS_SECRET_ACCESS_KEY": "x",
        "DEIA_ADMIN_PASSWORD": "x",
        "METRICS_TOKEN": "x",
        "PROMETHEUS_MULTIPROC_DIR": "/run/deia/metrics",
        "BACKUP_DIR": "/var/backups/deia",
    }
    passed = runner_env(worker)
    assert set(passed) == {
        "PATH",
        "LANG",
        "LC_ALL",
        "DATABASE_URL",
        "SECRET_KEY_FILE",
        "DEIA_VAR_DIR",
        "DEIA_RUNNER_TAG",
        "DEIA_BOT_SECRET",
        "BOT_CHAT_TIMEOUT",
        "LLM_RETRIES",
        "OLLAMA_URL",
        "OPENAI_API_KEY",
        "LOG_FORMAT",
    }
    assert all(passed[name] == worker[name] for name in passed)
