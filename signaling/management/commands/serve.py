"""`python manage.py serve`: run the ASGI server on HOST:PORT from the configuration.

daphne by default (`--server uvicorn` for uvicorn); the ASGI module warns in DEV_MODE.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

APPLICATION = "signaling_project.asgi:application"
# socket.io's perMessageDeflate default is off (and daphne has none): every small signaling
# frame compressed costs CPU for nothing. uvicorn enables it unless told otherwise.
UVICORN_WS_OPTIONS = ("--ws-per-message-deflate", "false")


class Command(BaseCommand):
    help = "Serve the signaling server (HTTP API, admin, Socket.IO) with daphne or uvicorn."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--server", choices=("daphne", "uvicorn"), default="daphne")

    def handle(self, *args: Any, **options: Any) -> None:
        cfg = settings.SIGNALING
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
            argv = [
                exe,
                "--host",
                cfg.host,
                "--port",
                str(cfg.port),
                "--log-level",
                "warning",
                "--proxy-headers",
                *UVICORN_WS_OPTIONS,
                APPLICATION,
            ]
        self.stdout.write(f"serving on http://{cfg.host}:{cfg.port} with {server}\n")
        self.stdout.flush()
        os.execv(exe, argv)
