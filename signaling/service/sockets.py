"""The signaling application: socket auth, event routing, relays (SPEC section 3).

Implements :class:`signaling.consumers.connection.SocketApp` for the default namespace:
authenticates CONNECT, routes each client event (rate limit, size limit, payload
validation) to a join, a leave (:mod:`signaling.service.participation`) or a relay, and
turns every refusal into an ack `{ok: false, error}` or an `error` event. The relay path
is the hot path: no database, one JSON encode per message, direct writes to local sockets.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rooms.ice import ice_servers_for
from rooms.tokens import Identity, TokenErrorCode, TokenRejected, authenticate_token
from signaling.consumers.connection import Connection, new_sid
from signaling.consumers.websocket import parse_query
from signaling.log_context import set_socket
from signaling.presence import HELD, Participant
from signaling.protocol import (
    CloseReason,
    EioMessageReceived,
    LocalProtocolError,
    SioAckReceived,
    SioConnect,
    SioDisconnect,
    SioEventReceived,
    encode_ack,
)
from signaling.service import events, metrics, offsets, participation, payloads, recovery
from signaling.service.errors import ErrorCode, LeaveReason, SignalingError
from signaling.service.instance import Instance, get_instance

logger = logging.getLogger(__name__)

ROOT_NAMESPACE = "/"
INVALID_NAMESPACE = "invalid_namespace"  # the connects_total result of a CONNECT to another namespace
# Redis or the database not answering: the event is answered `unavailable`, the socket stays.
BACKEND_FAILURES = (RedisConnectionError, RedisTimeoutError, OperationalError, InterfaceError)


@dataclass(slots=True)
class SocketState:
    """One authenticated socket: who it is, where it is, its rate-limit budget."""

    client_id: str
    agent_id: str
    identity: Identity
    room_id: str | None = None
    participant: Participant | None = None
    pid: str | None = None  # connection state recovery session id (None: recovery off)
    rate_budget: float = 0.0
    rate_budget_at: float = 0.0
    # True once a refused event was answered `rate_limited`; the events refused after it
    # get no answer until one is accepted again (a burst costs one reply, not one per event).
    is_rate_limit_told: bool = False


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


class SignalingApp:
    """The Socket.IO application of the signaling server."""

    def __init__(self, instance: Instance | None = None) -> None:
        self._instance = instance

    @property
    def instance(self) -> Instance:
        return self._instance or get_instance()

    # -- connection ------------------------------------------------------------------

    async def on_connect(self, conn: Connection, event: SioConnect) -> None:
        if event.namespace != ROOT_NAMESPACE:
            conn.session.reject_namespace(event.namespace, "Invalid namespace")
            metrics.record_connect(INVALID_NAMESPACE)
            return
        if conn.state is not None:
            return  # a second CONNECT for "/" is ignored, as socket.io does
        try:
            identity = authenticate_token(find_token(event.auth, conn.scope))
        except TokenRejected as exc:
            conn.session.reject_namespace(ROOT_NAMESPACE, str(exc.code))
            metrics.record_connect(str(exc.code))
            return
        instance = self.instance
        await instance.ensure_started()
        try:
            if await recovery.resume(
                instance, conn, identity, event.auth, namespace=ROOT_NAMESPACE, make_state=self._resumed_state(identity)
            ):
                return
        except BACKEND_FAILURES as exc:
            logger.warning("resume failed: a backend did not answer (%s); new session", exc)
        if conn.is_finished:
            return
        client_id = new_sid()
        pid = recovery.new_pid()
        state = SocketState(
            client_id,
            identity.agent_id,
            identity,
            pid=pid,
            rate_budget=float(settings.SIGNALING.rate_limit_burst),
            rate_budget_at=time.monotonic(),
        )
        conn.state = state
        recovery.track(conn)
        conn.accept(ROOT_NAMESPACE, client_id, pid=pid)
        metrics.record_connect(metrics.OK)
        instance.sockets[client_id] = conn
        connected = payloads.connected(
            client_id, identity.agent_id, ice_servers_for(identity.agent_id), recovered=False if pid else None
        )
        text = offsets.encode(events.CONNECTED, connected)
        conn.session.send_sio_text(text)
        if conn.sent is not None:
            conn.sent.append(text)
        await instance.presence.add_connection(instance.instance_id, client_id, identity.agent_id)
        if conn.state is not state:  # the socket ended while presence answered
            await instance.presence.remove_connection(instance.instance_id, client_id)

    @staticmethod
    def _resumed_state(identity: Identity) -> recovery.StateFactory:
        def make_state(client_id: str, room_id: str, participant: Participant, pid: str) -> SocketState:
            return SocketState(
                client_id,
                identity.agent_id,
                identity,
                room_id=room_id,
                participant=participant,
                pid=pid,
                rate_budget=float(settings.SIGNALING.rate_limit_burst),
                rate_budget_at=time.monotonic(),
            )

        return make_state

    async def on_sio_disconnect(self, conn: Connection, event: SioDisconnect) -> None:
        if event.namespace == ROOT_NAMESPACE:
            await self._drop(conn, CloseReason.CLIENT_CLOSE)

    async def on_close(self, conn: Connection, reason: CloseReason) -> None:
        await self._drop(conn, reason)

    async def _drop(self, conn: Connection, reason: CloseReason) -> None:
        """The socket ended: held for recovery (a lost transport, recovery on), else out of
        its room (`user_left` with `timeout` after a ping timeout, else `disconnected`)."""
        state: SocketState | None = conn.state
        if state is None:
            return
        conn.state = None
        instance = self.instance
        client_id = state.client_id
        is_held = False
        if state.room_id is not None and state.pid is not None:
            try:
                is_held = await recovery.hold(instance, conn, state, reason)
            except BACKEND_FAILURES as exc:
                logger.warning("%s could not be held: a backend did not answer (%s)", client_id, exc)
        if instance.sockets.get(client_id) is conn:
            del instance.sockets[client_id]
        if state.room_id is not None and not is_held:
            await participation.leave(instance, state, state.room_id, recovery.leave_reason_for(reason))
        await instance.presence.remove_connection(instance.instance_id, client_id)

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
        set_socket(state.client_id, state.room_id)
        started = perf_counter()
        result = metrics.OK
        try:
            now = time.monotonic()
            budget = min(cfg.rate_limit_burst, state.rate_budget + (now - state.rate_budget_at) * cfg.rate_limit_per_s)
            state.rate_budget_at = now
            if budget < 1.0:
                state.rate_budget = budget
                # Until the next token, the connection drops this socket's events unread.
                conn.pause_events((1.0 - budget) / cfg.rate_limit_per_s)
                if state.is_rate_limit_told:
                    result = ErrorCode.RATE_LIMITED
                    return
                state.is_rate_limit_told = True
                raise SignalingError(ErrorCode.RATE_LIMITED, "too many events; slow down")
            state.rate_budget = budget - 1.0
            state.is_rate_limit_told = False
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
                room_id = state.room_id
                if room_id is None or (request.room_id is not None and request.room_id != room_id):
                    raise SignalingError(ErrorCode.NOT_IN_ROOM, "this socket is not in that room")
                await participation.leave(self.instance, state, room_id, LeaveReason.LEFT)
                if event.ack_id is not None:
                    await conn.send_sio_text(encode_ack(event.ack_id, [{"ok": True, "roomId": room_id}]))
            else:
                raise SignalingError(ErrorCode.UNKNOWN_EVENT, f"unknown event {name!r}")
        except BACKEND_FAILURES as exc:
            logger.warning("event %r of %s failed: a backend did not answer (%s)", event.event, state.client_id, exc)
            result = ErrorCode.UNAVAILABLE
            await self._refuse(
                conn, event, SignalingError(ErrorCode.UNAVAILABLE, "the server cannot reach its store; retry")
            )
        except SignalingError as exc:
            result = exc.code
            await self._refuse(conn, event, exc)
        finally:
            metrics.record_event(event.event, result, perf_counter() - started)

    @staticmethod
    async def _refuse(conn: Connection, event: SioEventReceived, exc: SignalingError) -> None:
        """The ack `{ok: false, error}`, or an `error` event when the client asked no ack."""
        if event.ack_id is not None:
            await conn.send_sio_text(encode_ack(event.ack_id, [exc.ack_payload()]))
        else:
            await conn.send_sio_text(offsets.encode(events.ERROR, exc.event_payload(str(event.event))))

    async def _relay(
        self, conn: Connection, state: SocketState, request: payloads.RelayRequest, ack_id: int | None
    ) -> None:
        room_id = state.room_id
        instance = self.instance
        view = instance.membership.view(room_id) if room_id is not None else None
        if view is None or room_id is None:
            raise SignalingError(ErrorCode.NOT_IN_ROOM, "join a room before sending signaling messages")
        to = request.to
        target: Participant | None = None
        if to is not None:
            target = view.members.get(to) if to != state.client_id else None
            if target is None and to != state.client_id:
                # Not (yet) in this view: presence is the truth, the view only a cache.
                target = await instance.presence.member(room_id, to)
            if target is None:
                raise SignalingError(ErrorCode.TARGET_NOT_FOUND, "no such clientId in this room")
        name, body = payloads.relayed(request, client_id=state.client_id, agent_id=state.agent_id, room_id=room_id)
        try:
            text = offsets.encode_relayed(name, body)
        except LocalProtocolError as exc:
            # Binary attachments (the relay path is text only), or a number JSON cannot
            # carry (an integer past 4300 digits or 1e400 reads as Infinity).
            raise SignalingError(
                ErrorCode.INVALID_PAYLOAD, "this payload cannot be relayed (binary data or a number out of range)"
            ) from exc
        if target is None:
            await view.deliver(text, exclude=state.client_id)
            await instance.delivery.to_room(
                room_id, {"type": "room.broadcast", "text": text, "exclude": state.client_id}
            )
        elif not await view.deliver_to(target.client_id, text):
            if target.instance_id == HELD:  # held, and this view has not heard of it yet
                await instance.keeper.keep_or_forward(target.client_id, text)
            else:
                await instance.delivery.to_instance(
                    target.instance_id, {"type": "peer.relay", "to": target.client_id, "text": text}
                )
        if ack_id is not None:
            await conn.send_sio_text(payloads.ok_ack(ack_id))

    # -- rooms -----------------------------------------------------------------------

    async def _join(
        self, conn: Connection, state: SocketState, request: payloads.JoinRequest, ack_id: int | None
    ) -> None:
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
        instance = self.instance
        previous = await participation.join(instance, conn, state, room_id, ack_id)
        if previous is not None and previous != room_id:
            # Leave the previous room only once the new one admitted us: a refused join changes nothing.
            await participation.leave(instance, state, previous, LeaveReason.LEFT)
