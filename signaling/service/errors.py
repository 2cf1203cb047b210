"""Signaling error codes and reasons (SPEC section 3), and the one place errors become wire dicts.

Never imports Django or the transports. Values are exactly SPEC's strings.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Machine codes carried in acks and `error` events."""

    INVALID_PAYLOAD = "invalid_payload"
    ROOM_NOT_FOUND = "room_not_found"
    ROOM_FULL = "room_full"
    ROOM_CLOSED = "room_closed"
    FORBIDDEN = "forbidden"
    NOT_IN_ROOM = "not_in_room"
    TARGET_NOT_FOUND = "target_not_found"
    RATE_LIMITED = "rate_limited"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNKNOWN_EVENT = "unknown_event"
    # Beyond SPEC section 3: Redis or the database did not answer; the socket stays connected
    # and may retry (docs/protocol.md).
    UNAVAILABLE = "unavailable"


class LeaveReason(StrEnum):
    """Why a participant left (`user_left.reason`)."""

    LEFT = "left"
    DISCONNECTED = "disconnected"
    TIMEOUT = "timeout"
    KICKED = "kicked"
    REPLACED = "replaced"


class SignalingError(Exception):
    """A refused client event; becomes an ack or an `error` event."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def ack_payload(self) -> dict[str, Any]:
        """`{ok: false, error: {code, message}}` for an ack callback."""
        return {"ok": False, "error": {"code": str(self.code), "message": self.message}}

    def event_payload(self, event: str) -> dict[str, Any]:
        """`{code, message, event}` for an `error` event."""
        return {"code": str(self.code), "message": self.message, "event": event}
