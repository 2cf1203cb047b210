"""Socket.IO event names of the signaling protocol (SPEC section 3); the only place they are spelled."""

from __future__ import annotations

# client -> server
JOIN_ROOM = "join_room"
LEAVE_ROOM = "leave_room"
OFFER = "offer"
ANSWER = "answer"
CANDIDATE = "candidate"
CANDIDATE_END = "candidate-end"

# server -> client
CONNECTED = "connected"
JOINED = "joined"
USER_JOINED = "user_joined"
USER_LEFT = "user_left"
ROOM_CLOSED = "room_closed"
KICKED = "kicked"
PARTICIPANT_UPDATED = "participant_updated"
ROOM_UPDATED = "room_updated"
ERROR = "error"

RELAY_EVENTS = frozenset({OFFER, ANSWER, CANDIDATE, CANDIDATE_END})
CLIENT_EVENTS = RELAY_EVENTS | {JOIN_ROOM, LEAVE_ROOM}
