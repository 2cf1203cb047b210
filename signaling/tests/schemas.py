"""SPEC section 3 "Server to client" payload schemas, checked with plain asserts.

Owns the shape of every server event (required keys and their types) and of the room and
participant objects they embed (SPEC section 2). ``jsonschema`` is not a dependency: a schema
here is a dict ``{key: type or tuple of types or nested schema}``; server events may carry
keys beyond these (SPEC section 3), relayed payloads exactly the keys SPEC names plus the
sender's own. Never imports the server's modules.
"""

from __future__ import annotations

from typing import Any

NONE = type(None)
Schema = dict[str, Any]

ROOM: Schema = {
    "id": str,
    "name": str,
    "type": str,
    "settings": {
        "muteOnEntry": bool,
        "allowRecording": bool,
        "maxDuration": (int, NONE),
        "maxParticipants": int,
        "duplicateIdentity": str,
    },
    "createdBy": str,
    "createdAt": str,
    "participantCount": int,
}
PARTICIPANT: Schema = {"clientId": str, "agentId": str, "joinedAt": str, "muted": bool}
RELAY_ORIGIN: Schema = {"from": str, "agentId": str, "roomId": str}
# SPEC section 8: an RTCIceServer; TURN entries add "username" and "credential" (strings).
ICE_SERVER: Schema = {"urls": [str]}

SERVER_EVENTS: dict[str, Schema] = {
    "connected": {"clientId": str, "agentId": str, "iceServers": [ICE_SERVER]},
    "joined": {
        "roomId": str,
        "clientId": str,
        "agentId": str,
        "muted": bool,
        "room": ROOM,
        "participants": [PARTICIPANT],
    },
    "user_joined": {"roomId": str, "clientId": str, "agentId": str, "muted": bool},
    "user_left": {"roomId": str, "clientId": str, "agentId": str, "reason": str},
    "offer": {**RELAY_ORIGIN, "sdp": (str, dict)},
    "answer": {**RELAY_ORIGIN, "sdp": (str, dict)},
    "candidate": {**RELAY_ORIGIN, "candidate": (str, dict, NONE)},
    "room_closed": {"roomId": str, "reason": str},
    "kicked": {"roomId": str, "reason": str, "banned": bool},
    "participant_updated": {"roomId": str, "clientId": str, "agentId": str, "muted": bool},
    "room_updated": {"roomId": str, "room": ROOM},
    "error": {"code": str, "message": str, "event": str},
}
ENUMS: dict[tuple[str, str], frozenset[str]] = {
    ("user_left", "reason"): frozenset({"left", "disconnected", "timeout", "kicked", "replaced"}),
    ("room_closed", "reason"): frozenset({"deleted", "max_duration", "expired"}),
    ("error", "code"): frozenset(
        {
            "invalid_payload",
            "room_not_found",
            "room_full",
            "room_closed",
            "forbidden",
            "not_in_room",
            "target_not_found",
            "rate_limited",
            "unavailable",
            "payload_too_large",
            "unknown_event",
        }
    ),
}
ACK_ERROR: Schema = {"ok": bool, "error": {"code": str, "message": str}}


def _check(value: Any, schema: Any, where: str) -> None:
    if isinstance(schema, dict):
        assert isinstance(value, dict), f"{where}: expected an object, got {value!r}"
        for key, sub in schema.items():
            assert key in value, f"{where}: missing key {key!r} in {value!r}"
            _check(value[key], sub, f"{where}.{key}")
    elif isinstance(schema, list):
        assert isinstance(value, list), f"{where}: expected an array, got {value!r}"
        for index, item in enumerate(value):
            _check(item, schema[0], f"{where}[{index}]")
    else:
        types = schema if isinstance(schema, tuple) else (schema,)
        # bool is an int in Python; JSON keeps them apart.
        is_bool_as_int = isinstance(value, bool) and bool not in types
        assert isinstance(value, types) and not is_bool_as_int, f"{where}: {value!r} is not {types}"


def assert_matches_schema(event_name: str, payload: Any) -> None:
    """Assert ``payload`` has the SPEC section 3 shape of server event ``event_name``.

    Raises:
        AssertionError: naming the first key that is missing or mistyped.
    """
    assert event_name in SERVER_EVENTS, f"no schema for server event {event_name!r}"
    _check(payload, SERVER_EVENTS[event_name], event_name)
    for (event, key), allowed in ENUMS.items():
        if event == event_name:
            assert payload[key] in allowed, f"{event_name}.{key}: {payload[key]!r} not in {sorted(allowed)}"


def assert_ack_error(payload: Any, code: str) -> None:
    """Assert ``payload`` is ``{ok: false, error: {code, message}}`` with this ``code``."""
    _check(payload, ACK_ERROR, "ack")
    assert payload["ok"] is False and payload["error"]["code"] == code, payload


def assert_room(payload: Any) -> None:
    """Assert ``payload`` has the SPEC section 2 room shape."""
    _check(payload, ROOM, "room")
