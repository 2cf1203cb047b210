"""`python manage.py serve`: run the ASGI server on HOST:PORT from the configuration.

daphne by default (`--server uvicorn` for uvicorn). Warns at every start in DEV_MODE.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

logger = logging.getLogger(__name__)
APPLICATION = "signaling_project.asgi:application"


class Command(BaseCommand):
    help = "Serve the signaling server (HTTP API, admin, Socket.IO) with daphne or uvicorn."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--server", choices=("daphne", "uvicorn"), default="daphne")

    def handle(self, *args: Any, **options: Any) -> None:
        cfg = settings.SIGNALING
        if cfg.dev_mode:
            logger.warning(
                "DEV_MODE=1: development mode%s; never use it in production",
                " with a generated JWT_SECRET kept in .dev-jwt-secret" if cfg.dev_secret_generated else "",
            )
        bindir = os.path.dirname(sys.executable)
        server = options["server"]
        exe = os.path.join(bindir, server)
        if not os.path.exists(exe):
            exe = shutil.which(server) or ""
        if not exe:
            raise CommandError(f"{server} is not installed")
        if server == "daphne":
            argv = [exe, "-b", cfg.host, "-p", str(cfg.port), "--proxy-headers", APPLICATION]
        else:
            argv = [exe, "--host", cfg.host, "--port", str(cfg.port), "--log-level", "warning", "--proxy-headers", APPLICATION]
        self.stdout.write(f"serving on http://{cfg.host}:{cfg.port} with {server}\n")
        self.stdout.flush()
        os.execv(exe, argv)
