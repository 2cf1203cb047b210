"""ASGI routing of the signaling server: Engine.IO at ``/socket.io/``, Django elsewhere.

Also starts the process hub (instance inbox, sweepers) on the first request of any kind,
since daphne sends no lifespan events (STYLE section 6).
"""

from __future__ import annotations

import logging
from typing import Any

from channels.routing import ProtocolTypeRouter, URLRouter
from django.conf import settings
from django.urls import re_path

from signaling.consumers.polling import EnginePollingConsumer
from signaling.consumers.websocket import EngineWebsocketConsumer, refuse_websocket
from signaling.header_limits import HeaderLimit
from signaling.protocol import SessionConfig
from signaling.service.instance import get_instance
from signaling.service.sockets import SignalingApp

logger = logging.getLogger(__name__)
SOCKET_IO_PATH = r"^socket\.io/?$"
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


def build_application(django_application: Any) -> Any:
    """The full ASGI application around ``django_application``."""
    app = SignalingApp()
    config = session_config()
    websocket = EngineWebsocketConsumer.as_asgi(app=app, session_config=config)
    polling = EnginePollingConsumer.as_asgi(
        app=app, session_config=config, cors_origins=settings.SIGNALING.cors_origins
    )
    http = URLRouter([re_path(SOCKET_IO_PATH, polling), re_path(r"", django_application)])
    # Any other websocket path is refused (HTTP 403), not left to the router to raise on.
    websockets = URLRouter([re_path(SOCKET_IO_PATH, websocket), re_path(r"", refuse_websocket)])
    return HeaderLimit(StartHub(ProtocolTypeRouter({"http": http, "websocket": websockets})))
