"""Let daphne send the RFC 6455 close codes the Engine.IO layer needs (1002, 1009, ...).

ASGI lets an application close a websocket with any code, and SPEC section 3 asks for 1009
when a packet exceeds maxPayload. daphne passes the code to autobahn's ``sendClose``, which
accepts only 1000 and 3000-4999 (the range for *applications* in autobahn's API), so 1002 and
1009 raised and the socket stayed open. RFC 6455 section 7.4.1 defines 1002/1003/1007/1008/
1009/1011 for endpoints, servers included; autobahn's own ``sendCloseFrame`` sends them. This
module replaces daphne's ``serverClose`` once, at import, by one that uses it for those codes.
Imported by ``signaling_project.asgi``; a no-op where daphne is not installed.
"""

from __future__ import annotations

from typing import Any

# RFC 6455 section 7.4.1: status codes an endpoint may send on its own account.
PROTOCOL_CLOSE_CODES = frozenset({1002, 1003, 1007, 1008, 1009, 1011})


def install() -> bool:
    """Patch daphne's WebSocketProtocol.serverClose; True when daphne is present."""
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:
        return False
    if getattr(WebSocketProtocol.serverClose, "signaling_patched", False):
        return True

    def server_close(self: Any, code: int | None = None) -> None:
        code = 1000 if code is None else code
        if code in PROTOCOL_CLOSE_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            self.sendClose(code=code)

    server_close.signaling_patched = True  # type: ignore[attr-defined]
    WebSocketProtocol.serverClose = server_close
    return True
