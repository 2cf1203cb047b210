"""`python manage.py serve`: run the ASGI server on HOST:PORT from the configuration.

daphne by default (`--server uvicorn` for uvicorn); prints a banner of what to open first.
The ASGI module warns in DEV_MODE. daphne runs through :mod:`signaling.daphne_launcher` (its
own command line, on uvloop and the write-coalescing reactor: docs/benchmarks.md); uvicorn
through its binary, on uvloop and httptools, with :mod:`signaling.uvicorn_ws`'s websocket protocol.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

APPLICATION = "signaling_project.asgi:application"
DAPHNE_LAUNCHER = "signaling.daphne_launcher"
UVICORN_WS_PROTOCOL = "signaling.uvicorn_ws:WebSocketProtocol"
# uvicorn's options (docs/benchmarks.md, "uvicorn's levers"): uvloop and httptools named rather
# than left to `auto`; the websocket protocol is uvicorn's websockets-sansio one with a lighter
# path per message and per socket (signaling/uvicorn_ws.py; uvicorn's stock class, with a
# warning, on releases it was not tested with). socket.io's perMessageDeflate default is off
# (and daphne has none): every small signaling frame compressed costs CPU for nothing, and
# uvicorn enables it unless told otherwise. No websocket-level keepalive pings: Engine.IO's
# heartbeat is the liveness check (as with socket.io on Node, whose ws server sends none), and
# uvicorn's costs a timer per socket and a ping every 20 s. No access log (the log level is
# warning anyway; without handlers uvicorn skips the per-request logging call).
UVICORN_OPTIONS = (
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--ws",
    UVICORN_WS_PROTOCOL,
    "--ws-per-message-deflate",
    "false",
    "--ws-ping-interval",
    "0",
    "--no-access-log",
)
# daphne cuts every websocket after --websocket_timeout seconds (default 86400: a call or an
# idle signaling socket would drop after 24 h); a negative value is "no limit" (daphne's
# check_timeouts: `duration > websocket_timeout and websocket_timeout >= 0`). Liveness is
# Engine.IO's heartbeat, not a wall-clock cap.
DAPHNE_WS_OPTIONS = ("--websocket_timeout", "-1")
# The listening socket's queue of connections the kernel has accepted and the server has not
# taken yet. daphne's `-b/-p` listen with Twisted's default of 50: in a burst of connects (a
# meeting starting; the benchmark's 200 at a time) the kernel dropped the SYNs past it and
# those clients waited for their retransmit, a whole second (p99 1.2-1.3 s in the connect
# benchmark). Node listens with 511 and uvicorn with 2048; the kernel caps the value at
# net.core.somaxconn.
LISTEN_BACKLOG = 1024


def daphne_endpoint(host: str, port: int) -> str:
    """daphne's ``-e`` endpoint for HOST:PORT (what ``-b HOST -p PORT`` builds) with our backlog."""
    interface = host.strip("[]").replace(":", "\\:")  # endpoint syntax escapes colons (IPv6)
    return f"tcp:port={int(port)}:interface={interface}:backlog={LISTEN_BACKLOG}"


# What the banner lists, after the base URL: (path, what it is); {manage} is how to run
# manage.py in this mode.
BANNER_LINKS = (
    ("/demo/", "browser demo (open it in two windows for a call)"),
    ("/api/docs", "REST API docs"),
    ("/admin/", "admin (add a user: {manage} createsuperuser)"),
    ("/healthz", "health check"),
)


def banner(host: str, port: int, server: str, *, dev_mode: bool, python: str = ".venv/bin/python") -> str:
    """The lines printed before serving: where the server is, what to open, how to add a user."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown}:{port}"
    lines = [f"serving on http://{host}:{port} with {server}"]
    manage = ("DEV_MODE=1 " if dev_mode else "") + f"{python} manage.py"
    lines += [f"  {base}{link:<10} {text.format(manage=manage)}" for link, text in BANNER_LINKS]
    lines.append(f"  a token: {manage} mint_token AGENT_ID")
    return "\n".join(lines) + "\n"


def _python_command() -> str:
    """How a user runs this interpreter: its path relative to the project, else ``python``."""
    relative = os.path.relpath(sys.executable, settings.BASE_DIR)
    return "python" if relative.startswith("..") else relative


class Command(BaseCommand):
    help = "Serve the signaling server (HTTP API, admin, Socket.IO) with daphne or uvicorn."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--server", choices=("daphne", "uvicorn"), default="daphne")

    def handle(self, *args: Any, **options: Any) -> None:
        cfg = settings.SIGNALING
        server = options["server"]
        if server == "daphne":
            if importlib.util.find_spec("daphne") is None:
                raise CommandError("daphne is not installed")
            exe = sys.executable
            endpoint = daphne_endpoint(cfg.host, cfg.port)
            daphne_args = ["-e", endpoint, "--proxy-headers", *DAPHNE_WS_OPTIONS, APPLICATION]
            argv = [exe, "-m", DAPHNE_LAUNCHER, *daphne_args]
        else:
            exe = os.path.join(os.path.dirname(sys.executable), server)
            if not os.path.exists(exe):
                exe = shutil.which(server) or ""
            if not exe:
                raise CommandError(f"{server} is not installed")
            argv = [
                exe,
                "--host",
                cfg.host,
                "--port",
                str(cfg.port),
                "--log-level",
                "warning",
                "--proxy-headers",
                *UVICORN_OPTIONS,
                APPLICATION,
            ]
        self.stdout.write(banner(cfg.host, cfg.port, server, dev_mode=cfg.dev_mode, python=_python_command()))
        self.stdout.flush()
        os.execv(exe, argv)
