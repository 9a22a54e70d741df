#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

from __future__ import annotations

import sys


def main() -> None:
    import os

    from deia.config import import_settings_or_exit, leave_metrics_multiprocess_mode, owner_only_files

    owner_only_files()
    if sys.argv[1:2] in (["runbot"], ["runtemplate"]):
        # A bot runner (and the template that forks them) loads only the apps it needs (deia/settings_runner.py).
        os.environ["DJANGO_SETTINGS_MODULE"] = "deia.settings_runner"

    leave_metrics_multiprocess_mode()
    import_settings_or_exit()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
