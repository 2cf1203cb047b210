"""Client payload validation and server payload shapes (SPEC section 3).

Raw event arguments become small dataclasses here (`invalid_payload` otherwise); every
camelCase wire dict the server emits is built here and nowhere else, and encoded with the
``signaling/protocol`` encoders (no Socket.IO text is built by hand). Pure: no Django, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from signaling.presence import Participant
from signaling.protocol import encode_ack, encode_ack_json
from signaling.service import events
from signaling.service.errors import ErrorCode, SignalingError

OK_ARGS_JSON = '[{"ok":true}]'
ROOM_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_TOKEN_CHARS = 4096


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """A validated `join_room` payload."""

    room_id: str
    token: str | None


@dataclass(frozen=True, slots=True)
class LeaveRequest:
    """A validated `leave_room` payload."""

    room_id: str | None


@dataclass(frozen=True, slots=True)
class RelayRequest:
    """A validated `offer`/`answer`/`candidate`/`candidate-end` payload."""

    event: str
    to: str | None
    body: dict[str, Any]


def _invalid(message: str) -> SignalingError:
    return SignalingError(ErrorCode.INVALID_PAYLOAD, message)


def _object(args: list[Any]) -> dict[str, Any]:
    if not args or type(args[0]) is not dict:
        raise _invalid("payload must be a JSON object")
    return args[0]


def parse_join(args: list[Any]) -> JoinRequest:
    """Validate `{roomId, token?}`."""
    data = _object(args)
    room_id = data.get("roomId")
    if type(room_id) is not str or not ROOM_ID_RE.match(room_id):
        raise _invalid("roomId must be a room id string")
    token = data.get("token")
    if token is not None and (type(token) is not str or not 0 < len(token) <= MAX_TOKEN_CHARS):
        raise _invalid("token must be a non-empty string")
    return JoinRequest(room_id, token)


def parse_leave(args: list[Any]) -> LeaveRequest:
    """Validate `{}` or `{roomId}` (no payload at all is accepted as `{}`)."""
    if not args:
        return LeaveRequest(None)
    data = _object(args)
    room_id = data.get("roomId")
    if room_id is not None and type(room_id) is not str:
        raise _invalid("roomId must be a string")
    return LeaveRequest(room_id)


_REQUIRED = {
    events.OFFER: "sdp",
    events.ANSWER: "sdp",
    events.CANDIDATE: "candidate",
}


def parse_relay(event: str, args: list[Any]) -> RelayRequest:
    """Validate a signaling message: an object, `to` a string if present, its own field typed."""
    data = _object(args)
    to = data.get("to")
    if to is not None and type(to) is not str:
        raise _invalid("to must be a clientId string")
    field = _REQUIRED.get(event)
    if field is not None:
        value = data.get(field)
        if value is None or type(value) not in (str, dict):
            raise _invalid(f"{field} must be a string or an object")
    return RelayRequest(event, to, data)


def relayed(request: RelayRequest, *, client_id: str, agent_id: str, room_id: str) -> tuple[str, dict[str, Any]]:
    """The event name and payload peers receive: the sender's object minus `to`, plus origin."""
    body = dict(request.body)
    body.pop("to", None)
    event = request.event
    if event == events.CANDIDATE_END:
        event = events.CANDIDATE
        body["candidate"] = None
    body["from"] = client_id
    body["agentId"] = agent_id
    body["roomId"] = room_id
    return event, body


def connected(
    client_id: str, agent_id: str, ice_servers: list[dict[str, Any]], *, recovered: bool | None = None
) -> dict[str, Any]:
    """`connected` payload; `ice_servers` is the agent's freshly minted list (SPEC section 8);
    ``recovered`` (only with connection state recovery on): whether the session resumed."""
    payload: dict[str, Any] = {"clientId": client_id, "agentId": agent_id, "iceServers": ice_servers}
    if recovered is not None:
        payload["recovered"] = recovered
    return payload


def user_joined(room_id: str, participant: Participant) -> dict[str, Any]:
    """`user_joined` payload."""
    return {
        "roomId": room_id,
        "clientId": participant.client_id,
        "agentId": participant.agent_id,
        "muted": participant.is_muted,
    }


def user_left(room_id: str, participant: Participant, reason: str) -> dict[str, Any]:
    """`user_left` payload."""
    return {
        "roomId": room_id,
        "clientId": participant.client_id,
        "agentId": participant.agent_id,
        "reason": reason,
    }


def joined(room_id: str, me: Participant, room: dict[str, Any], others: list[Participant]) -> dict[str, Any]:
    """`joined` payload; `room` is the REST representation with the joiner counted."""
    return {
        "roomId": room_id,
        "clientId": me.client_id,
        "agentId": me.agent_id,
        "muted": me.is_muted,
        "room": room,
        "participants": [p.to_wire() for p in others],
    }


def joined_packets(joined_text: str, reply: dict[str, Any], ack_id: int | None) -> list[str]:
    """The `joined` event (``joined_text``: ``reply`` encoded), then (with an ack id) its ack
    `{ok: true, ...joined}`."""
    packets = [joined_text]
    if ack_id is not None:
        packets.append(encode_ack(ack_id, [{"ok": True, **reply}]))
    return packets


def ok_ack(ack_id: int) -> str:
    """The ack `{ok: true}` of a relayed message (a constant payload: nothing to encode)."""
    return encode_ack_json(ack_id, OK_ARGS_JSON)


def room_closed(room_id: str, reason: str) -> dict[str, Any]:
    """`room_closed` payload."""
    return {"roomId": room_id, "reason": reason}


def kicked(room_id: str, reason: str, *, is_banned: bool) -> dict[str, Any]:
    """`kicked` payload (SPEC section 9)."""
    return {"roomId": room_id, "reason": reason, "banned": is_banned}


def participant_updated(room_id: str, participant: Participant) -> dict[str, Any]:
    """`participant_updated` payload (SPEC section 9)."""
    return {
        "roomId": room_id,
        "clientId": participant.client_id,
        "agentId": participant.agent_id,
        "muted": participant.is_muted,
    }


def room_updated(room_id: str, room: dict[str, Any]) -> dict[str, Any]:
    """`room_updated` payload (SPEC section 9): `room` is the REST representation."""
    return {"roomId": room_id, "room": room}
