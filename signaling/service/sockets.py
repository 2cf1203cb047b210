"""The signaling application: socket auth, join/leave, relays (SPEC section 3).

Implements :class:`signaling.consumers.connection.SocketApp` for the default namespace.
Decides join/leave/relay, recipients, the cap and mute-on-entry; turns every refusal into
an ack `{ok: false, error}` or an `error` event. The relay path is the hot path: no
database, one JSON encode per message, direct writes to local sockets.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from rooms import lifecycle as room_rows
from rooms.ice import ice_servers_for
from rooms.serializers import room_representation
from rooms.tokens import Identity, TokenErrorCode, TokenRejected, authenticate_token
from signaling.consumers.connection import Connection, new_sid
from signaling.consumers.websocket import parse_query
from signaling.presence import JoinStatus, Participant
from signaling.protocol import (
    CloseReason,
    EioMessageReceived,
    LocalProtocolError,
    SioAckReceived,
    SioConnect,
    SioDisconnect,
    SioEventReceived,
    encode_ack,
    encode_event,
)
from signaling.service import events, payloads
from signaling.service.errors import ErrorCode, LeaveReason, SignalingError
from signaling.service.hub import Hub, get_hub, run_db
from signaling.service.lifecycle import room_emptied, room_occupied

logger = logging.getLogger(__name__)

ROOT_NAMESPACE = "/"
_JOINED_PREFIX_LEN = len('2["joined",')


@dataclass(slots=True)
class SocketState:
    """One authenticated socket: who it is, where it is, its rate bucket."""

    client_id: str
    agent_id: str
    identity: Identity
    room_id: str | None = None
    participant: Participant | None = None
    tokens: float = 0.0
    refilled_at: float = 0.0


def _bearer(scope: dict[str, Any]) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"authorization":
            text = value.decode("latin-1")
            if text[:7].lower() == "bearer ":
                return text[7:].strip()
    return None


def find_token(auth: dict[str, Any] | None, scope: dict[str, Any]) -> str | None:
    """`auth.token`, else `?token=`, else `Authorization: Bearer` (SPEC section 3).

    Raises:
        TokenRejected: `auth.token` is present but not a string (`invalid_token`).
    """
    if auth:
        token = auth.get("token")
        if token is not None and type(token) is not str:
            raise TokenRejected(TokenErrorCode.INVALID, "auth.token must be a string")
        if token:
            return token
    token = parse_query(scope).get("token")
    return token or _bearer(scope)


def remember_room(hub: Hub, room: Any) -> tuple[dict[str, Any], room_rows.RoomPolicy]:
    """Cache an open room's wire shape (participantCount 0) and join policy in the hub."""
    entry = (room_representation(room, participant_count=0), room_rows.policy_of(room))
    if not room.is_closed:
        hub.policies[room.id] = entry
    return entry


class SignalingApp:
    """The Socket.IO application of the signaling server."""

    def __init__(self, hub: Hub | None = None) -> None:
        self._hub = hub

    @property
    def hub(self) -> Hub:
        return self._hub or get_hub()

    # -- connection ------------------------------------------------------------------

    async def on_connect(self, conn: Connection, event: SioConnect) -> None:
        if event.namespace != ROOT_NAMESPACE:
            conn.session.reject_namespace(event.namespace, "Invalid namespace")
            return
        if conn.state is not None:
            return  # a second CONNECT for "/" is ignored, as socket.io does
        try:
            identity = authenticate_token(find_token(event.auth, conn.scope))
        except TokenRejected as exc:
            conn.session.reject_namespace(ROOT_NAMESPACE, str(exc.code))
            return
        hub = self.hub
        await hub.ensure_started()
        client_id = new_sid()
        conn.state = SocketState(
            client_id, identity.agent_id, identity, tokens=float(settings.SIGNALING.rate_limit_burst)
        )
        conn.state.refilled_at = time.monotonic()
        conn.accept(ROOT_NAMESPACE, client_id)
        hub.peers[client_id] = conn
        connected = payloads.connected(client_id, identity.agent_id, ice_servers_for(identity.agent_id))
        conn.session.send_sio_text(encode_event(events.CONNECTED, connected))
        await hub.presence.add_connection(hub.instance_id, client_id, identity.agent_id)

    async def on_sio_disconnect(self, conn: Connection, event: SioDisconnect) -> None:
        if event.namespace == ROOT_NAMESPACE:
            await self._drop(conn, LeaveReason.DISCONNECTED)

    async def on_close(self, conn: Connection, reason: CloseReason) -> None:
        leave = LeaveReason.TIMEOUT if reason == CloseReason.PING_TIMEOUT else LeaveReason.DISCONNECTED
        await self._drop(conn, leave)

    async def _drop(self, conn: Connection, reason: LeaveReason) -> None:
        state: SocketState | None = conn.state
        if state is None:
            return
        conn.state = None
        hub = self.hub
        hub.peers.pop(state.client_id, None)
        if state.room_id is not None:
            await self._leave(conn, state, reason)
        await hub.presence.remove_connection(hub.instance_id, state.client_id)

    async def on_ack(self, conn: Connection, event: SioAckReceived) -> None:
        logger.debug("unexpected ack %s from %s", event.ack_id, conn.eio_sid)

    async def on_message(self, conn: Connection, event: EioMessageReceived) -> None:
        logger.debug("raw engine.io message on a socket.io session %s", conn.eio_sid)

    # -- events ----------------------------------------------------------------------

    async def on_event(self, conn: Connection, event: SioEventReceived) -> None:
        state: SocketState | None = conn.state
        if state is None or event.namespace != ROOT_NAMESPACE:
            return
        cfg = settings.SIGNALING
        try:
            now = time.monotonic()
            tokens = min(cfg.rate_limit_burst, state.tokens + (now - state.refilled_at) * cfg.rate_limit_per_s)
            state.refilled_at = now
            if tokens < 1.0:
                state.tokens = tokens
                raise SignalingError(ErrorCode.RATE_LIMITED, "too many events; slow down")
            state.tokens = tokens - 1.0
            name = event.event
            if name in events.RELAY_EVENTS:
                if event.size_bytes > cfg.max_message_bytes:
                    raise SignalingError(
                        ErrorCode.PAYLOAD_TOO_LARGE, f"signaling messages are limited to {cfg.max_message_bytes} bytes"
                    )
                await self._relay(conn, state, payloads.parse_relay(name, event.args), event.ack_id)
            elif name == events.JOIN_ROOM:
                await self._join(conn, state, payloads.parse_join(event.args), event.ack_id)
            elif name == events.LEAVE_ROOM:
                request = payloads.parse_leave(event.args)
                if state.room_id is None or (request.room_id is not None and request.room_id != state.room_id):
                    raise SignalingError(ErrorCode.NOT_IN_ROOM, "this socket is not in that room")
                room_id = state.room_id
                await self._leave(conn, state, LeaveReason.LEFT)
                if event.ack_id is not None:
                    await conn.send_sio_text(encode_ack(event.ack_id, [{"ok": True, "roomId": room_id}]))
            else:
                raise SignalingError(ErrorCode.UNKNOWN_EVENT, f"unknown event {name!r}")
        except SignalingError as exc:
            if event.ack_id is not None:
                await conn.send_sio_text(encode_ack(event.ack_id, [exc.ack_payload()]))
            else:
                await conn.send_sio_text(encode_event(events.ERROR, exc.event_payload(event.event)))

    async def _relay(
        self, conn: Connection, state: SocketState, request: payloads.RelayRequest, ack_id: int | None
    ) -> None:
        room_id = state.room_id
        view = self.hub.rooms.get(room_id) if room_id is not None else None
        if view is None or room_id is None:
            raise SignalingError(ErrorCode.NOT_IN_ROOM, "join a room before sending signaling messages")
        to = request.to
        if to is not None and (to == state.client_id or to not in view.members):
            raise SignalingError(ErrorCode.TARGET_NOT_FOUND, "no such clientId in this room")
        name, body = payloads.relayed(request, client_id=state.client_id, agent_id=state.agent_id, room_id=room_id)
        try:
            text = encode_event(name, body)
        except LocalProtocolError as exc:  # binary attachments: the relay path is text only
            raise SignalingError(ErrorCode.INVALID_PAYLOAD, "binary data cannot be relayed") from exc
        if to is None:
            await self.hub.deliver_room(room_id, text, exclude=state.client_id)
        else:
            await self.hub.deliver_to(view, to, text)
        if ack_id is not None:
            await conn.send_sio_text(f'3{ack_id}[{{"ok":true}}]')

    # -- rooms -----------------------------------------------------------------------

    async def _policy(self, room_id: str) -> tuple[dict[str, Any], room_rows.RoomPolicy]:
        """The room's wire representation (participantCount 0) and join policy, cached per room."""
        hub = self.hub
        cached = hub.policies.get(room_id)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        room = await run_db(room_rows.load_room, room_id)
        if room is None:
            raise SignalingError(ErrorCode.ROOM_NOT_FOUND, "no room has that id")
        return remember_room(hub, room)

    async def _join(
        self, conn: Connection, state: SocketState, request: payloads.JoinRequest, ack_id: int | None
    ) -> None:
        """Join a room; the joiner gets `joined` and its ack before anyone else hears of it."""
        room_id = request.room_id
        identity = state.identity
        if identity.room_id is not None and identity.room_id != room_id:
            raise SignalingError(ErrorCode.FORBIDDEN, "this socket's join token admits to another room")
        if request.token is not None:
            try:
                join_identity = authenticate_token(request.token)
            except TokenRejected as exc:
                raise SignalingError(ErrorCode.FORBIDDEN, f"join token refused: {exc.code}") from exc
            if join_identity.room_id != room_id or join_identity.agent_id != state.agent_id:
                raise SignalingError(ErrorCode.FORBIDDEN, "the join token is for another room or agent")
        room, policy = await self._policy(room_id)
        if policy.is_closed:
            raise SignalingError(ErrorCode.ROOM_CLOSED, "the room is closed")
        hub = self.hub
        if state.room_id == room_id and state.participant is not None:
            members = await hub.presence.members(room_id)
            reply = self._joined_payload(room, room_id, state.participant, members)
            await self._send_joined(conn, reply, ack_id)
            return
        me = Participant(
            client_id=state.client_id,
            agent_id=state.agent_id,
            joined_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            is_muted=policy.is_muted_on_entry,
            instance_id=hub.instance_id,
        )
        outcome = await hub.presence.join(room_id, me, policy.cap)
        if outcome.status is JoinStatus.FULL:
            raise SignalingError(ErrorCode.ROOM_FULL, f"the room is full ({policy.cap} participants)")
        if outcome.status is JoinStatus.CLOSED:
            hub.policies.pop(room_id, None)
            raise SignalingError(ErrorCode.ROOM_CLOSED, "the room is closed")
        # Leave the previous room only once the new one admitted us: a refused join changes nothing.
        if state.room_id is not None:
            await self._leave(conn, state, LeaveReason.LEFT)
        state.room_id, state.participant = room_id, me
        await hub.attach(room_id, conn, outcome.members)
        if len(outcome.members) == 1:
            # The first joiner: the row is marked before anyone hears of the join.
            await room_occupied(room_id, policy.max_duration_min)
        reply = self._joined_payload(room, room_id, me, outcome.members)
        await self._send_joined(conn, reply, ack_id)
        await hub.announce_join(room_id, me)

    @staticmethod
    async def _send_joined(conn: Connection, reply: dict[str, Any], ack_id: int | None) -> None:
        """`joined`, then the ack `{ok: true, ...joined}` built from the same JSON text."""
        event = encode_event(events.JOINED, reply)  # 2["joined",{...}]
        await conn.send_sio_text(event)
        if ack_id is not None:
            body = event[_JOINED_PREFIX_LEN:-1]  # {...}: the payload, encoded once
            await conn.send_sio_text(f'3{ack_id}[{{"ok":true,{body[1:]}]')

    @staticmethod
    def _joined_payload(
        room: dict[str, Any], room_id: str, me: Participant, members: list[Participant]
    ) -> dict[str, Any]:
        others = sorted((m for m in members if m.client_id != me.client_id), key=lambda m: m.joined_at)
        return payloads.joined(room_id, me, {**room, "participantCount": len(members)}, others)

    async def _leave(self, conn: Connection, state: SocketState, reason: LeaveReason) -> None:
        room_id = state.room_id
        if room_id is None:
            return
        state.room_id, state.participant = None, None
        hub = self.hub
        outcome = await hub.presence.leave(room_id, state.client_id)
        view = hub.rooms.get(room_id)
        had_remote = view is not None and view.has_remote()
        await hub.detach(room_id, state.client_id)
        if outcome is None:
            return
        await hub.announce_leave(room_id, outcome, reason, remote=had_remote)
        if outcome.remaining == 0:
            await room_emptied(room_id)
