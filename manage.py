#!/usr/bin/env python
"""Django's command-line utility; a configuration error prints one line and exits 2."""

import os
import sys


def main() -> None:
    """Run administrative tasks."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signaling_project.settings")
    from django.core.management import execute_from_command_line

    from signaling_project.config import ConfigError

    try:
        execute_from_command_line(sys.argv)
    except ConfigError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
