#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

from __future__ import annotations

import sys


def main() -> None:
    from deia.config import import_settings_or_exit, leave_metrics_multiprocess_mode

    leave_metrics_multiprocess_mode()
    import_settings_or_exit()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
