"""The conformance app: our protocol layer with the reference behaviours of socket.io's suites.

Issue: the protocol layer must be checkable against external conformance suites. This
ASGI application mounts the same transports and sans-IO core as the product, with the
values and handlers that the Engine.IO v4 and Socket.IO v5 protocol test suites expect:
pingInterval 300 ms, pingTimeout 200 ms, maxPayload 1000000;
``/engine.io/``: a bare Engine.IO endpoint echoing every message (text as text, binary as binary);
``/socket.io/``: namespaces ``/`` and ``/custom`` without auth, emitting ``auth`` with the
CONNECT payload after the connect reply, re-emitting ``message`` as ``message-back``, and
acking ``message-with-ack`` with its own arguments.

Needs no database and no JWT secret. Start it with ``python -m signaling.conformance --port N``
(or any ASGI server on ``signaling.conformance:application``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

if not settings.configured:
    settings.configure(CHANNEL_LAYERS={}, USE_TZ=True)

from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import re_path

from signaling.consumers.connection import Connection, new_sid
from signaling.consumers.polling import EnginePollingConsumer
from signaling.consumers.websocket import EngineWebsocketConsumer, refuse_websocket
from signaling.protocol import (
    CloseReason,
    EioMessageReceived,
    SessionConfig,
    SioAckReceived,
    SioConnect,
    SioDisconnect,
    SioEventReceived,
)

# The reference server of the protocol test suites (docs/engine.io-protocol, docs/socket.io-protocol).
REFERENCE_CONFIG = SessionConfig(ping_interval_ms=300, ping_timeout_ms=200, max_payload_bytes=1_000_000)
NAMESPACES = ("/", "/custom")


class ReferenceSocketApp:
    """Socket.IO reference behaviours: auth echo, message-back, message-with-ack."""

    async def on_connect(self, conn: Connection, event: SioConnect) -> None:
        if event.namespace not in NAMESPACES:
            conn.session.reject_namespace(event.namespace, "Invalid namespace")
            return
        conn.accept(event.namespace, new_sid())
        conn.session.emit("auth", event.auth if event.auth is not None else {}, namespace=event.namespace)

    async def on_event(self, conn: Connection, event: SioEventReceived) -> None:
        if event.namespace not in conn.namespaces:
            return
        if event.event == "message":
            conn.session.emit("message-back", *event.args, namespace=event.namespace)
        elif event.event == "message-with-ack" and event.ack_id is not None:
            conn.session.ack(event.ack_id, list(event.args), namespace=event.namespace)

    async def on_ack(self, conn: Connection, event: SioAckReceived) -> None:
        return None

    async def on_message(self, conn: Connection, event: EioMessageReceived) -> None:
        return None

    async def on_sio_disconnect(self, conn: Connection, event: SioDisconnect) -> None:
        return None

    async def on_close(self, conn: Connection, reason: CloseReason) -> None:
        return None


class EchoApp(ReferenceSocketApp):
    """Bare Engine.IO: every message goes back as it came."""

    async def on_message(self, conn: Connection, event: EioMessageReceived) -> None:
        conn.session.send_eio_message(event.data)


def build_conformance_application(config: SessionConfig = REFERENCE_CONFIG) -> Any:
    """The conformance ASGI application."""
    sio, eio = ReferenceSocketApp(), EchoApp()

    def transports(app: Any, socketio: bool) -> tuple[Any, Any]:
        ws = EngineWebsocketConsumer.as_asgi(app=app, session_config=config, socketio=socketio)
        poll = EnginePollingConsumer.as_asgi(app=app, session_config=config, socketio=socketio)
        return ws, poll

    sio_ws, sio_poll = transports(sio, True)
    eio_ws, eio_poll = transports(eio, False)
    return ProtocolTypeRouter(
        {
            "http": URLRouter([re_path(r"^socket\.io/?$", sio_poll), re_path(r"^engine\.io/?$", eio_poll)]),
            "websocket": URLRouter(
                [re_path(r"^socket\.io/?$", sio_ws), re_path(r"^engine\.io/?$", eio_ws), re_path(r"", refuse_websocket)]
            ),
        }
    )


from signaling.consumers import daphne_close_codes  # noqa: E402

daphne_close_codes.install()
application = build_conformance_application()


def main(argv: list[str] | None = None) -> None:
    """``python -m signaling.conformance [--port N] [--host H] [--server daphne|uvicorn]``."""
    import argparse
    import os
    import sys

    from signaling.management.commands.serve import UVICORN_OPTIONS

    parser = argparse.ArgumentParser(prog="python -m signaling.conformance", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--server", choices=("daphne", "uvicorn"), default="daphne")
    args = parser.parse_args(argv)
    exe = os.path.join(os.path.dirname(sys.executable), args.server)
    target = "signaling.conformance:application"
    if args.server == "daphne":
        command = [exe, "-b", args.host, "-p", str(args.port), target]
    else:
        command = [exe, "--host", args.host, "--port", str(args.port), "--log-level", "warning"]
        command += [*UVICORN_OPTIONS, target]
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    print(f"conformance app on http://{args.host}:{args.port} (/engine.io/, /socket.io/)", flush=True)
    os.execve(exe, command, env)


if __name__ == "__main__":
    main()
