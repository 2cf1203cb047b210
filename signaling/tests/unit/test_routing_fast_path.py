"""``signaling.routing.is_socketio_path`` decides as Channels' ``URLRouter`` does.

The websocket fast path of :class:`signaling.routing.SignalingApplication` skips the routers
for an Engine.IO websocket; it must take exactly the scopes the routers would send to the
Engine.IO consumer. Checked against the real ``URLRouter`` with the project's two routes.
"""

from __future__ import annotations

from typing import Any

import pytest
from channels.routing import URLRouter
from django.urls import re_path

from signaling.routing import SOCKET_IO_PATH, is_socketio_path

PATHS = [
    "/socket.io/",
    "/socket.io",
    "socket.io/",
    "//socket.io/",
    "/socket.io//",
    "/socket.iox",
    "/socket.io/\n",
    "/socket.io\n",
    "/x/socket.io/",
    "/x/socket.io",
    "/xsocket.io/",
    "/",
    "",
    "/Socket.io/",
    "/socket-io/",
    "/socket.io/x",
]
ROOT_PATHS = ["", "/x", "/y"]


async def routed_by_channels(scope: dict[str, Any]) -> str:
    seen: list[str] = []

    def record(name: str) -> Any:
        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            seen.append(name)

        return app

    router = URLRouter([re_path(SOCKET_IO_PATH, record("engineio")), re_path(r"", record("other"))])
    try:
        await router(dict(scope), None, None)
    except ValueError:
        return "refused"
    return seen[0]


@pytest.mark.parametrize("root_path", ROOT_PATHS)
@pytest.mark.parametrize("path", PATHS)
async def test_fast_path_takes_exactly_what_the_router_gives_the_engineio_consumer(path: str, root_path: str) -> None:
    # given
    scope = {"type": "websocket", "path": path, "root_path": root_path}
    # when
    by_router = await routed_by_channels(scope)
    # then
    assert is_socketio_path(scope) is (by_router == "engineio")
