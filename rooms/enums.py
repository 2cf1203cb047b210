"""Room enums whose values are SPEC.md's exact wire strings (sections 2 and 3).

Never imports Django models or ``signaling``: both layers may import this module.
"""

from __future__ import annotations

from enum import StrEnum


class RoomType(StrEnum):
    """Media kind of a room (``type`` in the REST body and representation)."""

    VOICE = "voice"
    VIDEO = "video"


class CloseReason(StrEnum):
    """Why a room closed: ``closeReason`` over REST and ``reason`` in ``room_closed``."""

    DELETED = "deleted"
    MAX_DURATION = "max_duration"
    EXPIRED = "expired"


class DuplicateIdentity(StrEnum):
    """What a join by an agentId already in the room does (``settings.duplicateIdentity``, SPEC section 9)."""

    ALLOW = "allow"
    REJECT = "reject"
    REPLACE = "replace"
