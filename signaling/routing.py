"""ASGI routing of the signaling server: Engine.IO at ``/socket.io/``, Django elsewhere.

Also starts the process hub (instance inbox, sweepers) on the first request of any kind,
since daphne sends no lifespan events (STYLE section 6); uvicorn's lifespan events go to
:mod:`signaling.lifecycle` (SIGTERM drain, lag sampler). Both handshakes ask the process's
:class:`~signaling.admission.Admission` before a new session starts.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from channels.routing import ProtocolTypeRouter, URLRouter
from django.conf import settings
from django.urls import re_path

from signaling import lifecycle
from signaling.consumers.polling import EnginePollingConsumer
from signaling.consumers.websocket import EngineWebsocketConsumer, refuse_websocket
from signaling.header_limits import MAX_HEADER_BYTES, HeaderLimit, header_bytes
from signaling.protocol import SessionConfig
from signaling.service.instance import get_instance
from signaling.service.sockets import SignalingApp

logger = logging.getLogger(__name__)
SOCKET_IO_PATH = r"^socket\.io/?$"
# Django's RegexPattern matches an endpoint pattern ending in "$" with fullmatch (no trailing "\n").
_SOCKET_IO_PATH = re.compile(SOCKET_IO_PATH)
# socket.io's connectTimeout default: a session that connects no namespace is closed.
CONNECT_TIMEOUT_MS = 45000


def session_config() -> SessionConfig:
    """Handshake values from configuration (SPEC section 3)."""
    cfg = settings.SIGNALING
    return SessionConfig(
        ping_interval_ms=cfg.heartbeat_interval_ms,
        ping_timeout_ms=cfg.heartbeat_timeout_ms,
        max_payload_bytes=cfg.max_payload_bytes,
        connect_timeout_ms=CONNECT_TIMEOUT_MS,
        max_buffered_bytes=cfg.max_buffered_bytes,
    )


class StartHub:
    """ASGI middleware: make sure the hub runs before the first request is served."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.started = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # uvicorn: the moment its signal handlers are in place
            await lifecycle.serve_lifespan(receive, send)
            return
        if not self.started and scope["type"] in ("http", "websocket"):
            await get_instance().ensure_started()
            self.started = True
        await self.inner(scope, receive, send)


def dev_mode_warning() -> None:
    """SPEC section 1: development mode warns at every start."""
    cfg = settings.SIGNALING
    if cfg.dev_mode:
        logger.warning(
            "DEV_MODE=1: development mode%s; never use it in production",
            " with a generated JWT_SECRET kept in .dev-jwt-secret" if cfg.dev_secret_generated else "",
        )


def is_socketio_path(scope: dict[str, Any]) -> bool:
    """True when the outermost Channels ``URLRouter`` would route ``scope`` to :data:`SOCKET_IO_PATH`
    (``root_path`` stripped, then leading slashes)."""
    path = scope.get("path")
    if not isinstance(path, str):
        return False
    root_path = scope.get("root_path", "")
    if root_path:
        if not path.startswith(root_path):
            return False
        path = path[len(root_path) :]
    return _SOCKET_IO_PATH.fullmatch(path.lstrip("/")) is not None


class SignalingApplication:
    """The ASGI application: an established process's Engine.IO websockets go straight to their
    consumer, everything else through ``HeaderLimit(StartHub(ProtocolTypeRouter(...)))``.

    The consumer gets the server's scope itself, after the same checks (header bytes; the hub
    started by an earlier request); the router's copy would add ``path_remaining`` ("") and
    an empty ``url_route``, which nothing here reads (two more keys would also grow the scope
    dict from 272 to 464 bytes). What it saves is per socket, for as long as the socket lives:
    five coroutine frames of the routing chain (middlewares, routers, Channels' ``as_asgi``
    wrapper) and the router's scope copy (docs/benchmarks.md: about 2 KB).
    """

    def __init__(self, chain: Any, hub: StartHub, websocket_kwargs: dict[str, Any]) -> None:
        self.chain = chain
        self.hub = hub
        self.websocket_kwargs = websocket_kwargs

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            scope["type"] == "websocket"
            and self.hub.started
            and "path_remaining" not in scope
            and is_socketio_path(scope)
            and header_bytes(scope) <= MAX_HEADER_BYTES
        ):
            await EngineWebsocketConsumer(**self.websocket_kwargs)(scope, receive, send)
            return
        await self.chain(scope, receive, send)


def build_application(django_application: Any) -> Any:
    """The full ASGI application around ``django_application``."""
    app = SignalingApp()
    config = session_config()
    admission = lifecycle.admission()
    websocket_kwargs: dict[str, Any] = {"app": app, "session_config": config, "admission": admission}
    websocket = EngineWebsocketConsumer.as_asgi(**websocket_kwargs)
    polling = EnginePollingConsumer.as_asgi(
        app=app, session_config=config, cors_origins=settings.SIGNALING.cors_origins, admission=admission
    )
    http = URLRouter([re_path(SOCKET_IO_PATH, polling), re_path(r"", django_application)])
    # Any other websocket path is refused (HTTP 403), not left to the router to raise on.
    websockets = URLRouter([re_path(SOCKET_IO_PATH, websocket), re_path(r"", refuse_websocket)])
    hub = StartHub(ProtocolTypeRouter({"http": http, "websocket": websockets}))
    return SignalingApplication(HeaderLimit(hub), hub, websocket_kwargs)
