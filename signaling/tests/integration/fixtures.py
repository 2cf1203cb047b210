"""In-process integration fixtures: the real ASGI application, driven by raw Engine.IO frames.

Registered from the root ``conftest.py`` (``pytest_plugins``). Owns:

- ``fresh_instance``: a new per-process instance, an empty ``Connection.registry`` and a flushed
  in-memory channel layer for each test; at teardown every live session is closed and the
  hub's background tasks (inbox, sweeper) are cancelled;
- ``signaling``: a :class:`Harness` whose ASGI application (``build_application``) is built
  lazily on first use, so a test changes ``settings.SIGNALING`` *before* it connects;
  it opens :class:`WsClient` sessions over channels' ``WebsocketCommunicator`` and
  :class:`PollRequest` long-polling requests over ``ApplicationCommunicator`` (a GET can be
  held open, which ``HttpCommunicator`` cannot do);
- ``open_room`` / ``room_row``: ORM helpers callable from async tests;
- ``signaling_config``: replace fields of the frozen ``settings.SIGNALING`` for one test.

Frames are Engine.IO v4 / Socket.IO v5 text as a client writes them: ``0{...}`` OPEN,
``40{"token":...}`` CONNECT, ``42[...]`` events, ``42<id>[...]`` events with an ack id,
``43<id>[...]`` acks, ``2``/``3`` ping/pong. Tokens are real HS256 JWTs
(``rooms.tokens.mint_agent_token``: exactly ``{agentId, iat, exp}``). Every wait has a
timeout. In-memory channel layer only; no server process, no network.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import ApplicationCommunicator, WebsocketCommunicator
from django.conf import settings as django_settings
from django.core.asgi import get_asgi_application

from rooms import services as room_services
from rooms.models import Room
from rooms.tests.fixtures import Matches
from rooms.tokens import mint_agent_token
from signaling.consumers.connection import Connection
from signaling.routing import build_application
from signaling.service.database import close_db_threads
from signaling.service.instance import get_instance, reset_instance
from signaling.tests.schemas import SERVER_EVENTS, assert_matches_schema

TIMEOUT_S = 2.0  # every await on the application
QUIET_S = 0.2  # how long "nothing arrives" is watched
SOCKET_IO_PATH = "/socket.io/"
WS_QUERY = "EIO=4&transport=websocket"
POLLING_QUERY = "EIO=4&transport=polling"
CLIENT_ADDRESS = ("127.0.0.1", 50000)
SERVER_ADDRESS = ("127.0.0.1", 8080)
# Participant.joined_at: ISO 8601 UTC with a fraction and Z (``datetime.isoformat``).
ISO_UTC_FRACTION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
# Engine.IO sid / Socket.IO client id: 20 URL-safe characters (connection.SID_BYTES).
SID_RE = re.compile(r"^[A-Za-z0-9_-]{20}$")


ANY_JOINED_AT = Matches(ISO_UTC_FRACTION_RE)
ANY_SID = Matches(SID_RE)


class WsClient:
    """One websocket to ``/socket.io/``, read and written as raw Engine.IO text frames.

    A reader task takes every frame off the wire as it arrives and answers pings (``2`` ->
    ``3``) at once while ``answers_pings`` is True, as a real client does whatever the test is
    waiting for. Frames read while waiting for something else (an ack, a close) are kept, in
    order, and handed out first by :meth:`frame`.
    """

    def __init__(self, communicator: WebsocketCommunicator, *, answers_pings: bool = True) -> None:
        self.communicator = communicator
        self.answers_pings = answers_pings
        self.backlog: deque[str | bytes] = deque()
        self.inbox: asyncio.Queue[str | bytes | None] = asyncio.Queue()  # None: the server closed
        self.open_packet: dict[str, Any] | None = None
        self.client_id: str | None = None
        self.agent_id: str | None = None
        self.close_code: int | None = None
        self.is_closed_seen = False
        self._last_ack_id = 0
        self._reader: asyncio.Task[None] | None = None

    def start_reading(self) -> None:
        """Start the reader (after the websocket was accepted)."""
        self._reader = asyncio.get_running_loop().create_task(self._pump())

    def stop_reading(self) -> None:
        """Stop the reader."""
        if self._reader is not None:
            self._reader.cancel()

    async def _pump(self) -> None:
        output = self.communicator.output_queue
        while True:
            message = await output.get()
            if message["type"] == "websocket.close":
                self.close_code = int(message.get("code", 1000))
                self.inbox.put_nowait(None)
                return
            assert message["type"] == "websocket.send", message
            frame = message["text"] if message.get("text") is not None else message["bytes"]
            if frame == "2" and self.answers_pings:
                await self.send("3")
                continue
            self.inbox.put_nowait(frame)

    # -- reading ---------------------------------------------------------------------

    async def _read(self, timeout: float) -> str | bytes | None:
        """The next frame off the wire (pings handled); None once the server closed."""
        if self.is_closed_seen:
            return None
        try:
            frame = await asyncio.wait_for(self.inbox.get(), timeout)
        except TimeoutError:
            future = self.communicator.future
            crash = future.exception() if future.done() and not future.cancelled() else None
            pytest.fail(f"nothing from the server within {timeout} s (unread: {list(self.backlog)}, app: {crash!r})")
        if frame is None:
            self.is_closed_seen = True
        return frame

    async def frame(self, timeout: float = TIMEOUT_S) -> str | bytes:
        """The next unread frame."""
        if self.backlog:
            return self.backlog.popleft()
        frame = await self._read(timeout)
        if frame is None:
            pytest.fail(f"the server closed the websocket (code {self.close_code})")
        return frame

    async def event(self, timeout: float = TIMEOUT_S) -> tuple[str, Any]:
        """The next frame, which must be a Socket.IO EVENT ``42[name, payload]``.

        Server events of SPEC section 3 are checked against their schema.
        """
        frame = await self.frame(timeout)
        assert isinstance(frame, str) and frame.startswith("42["), frame
        name, *args = json.loads(frame[2:])
        assert len(args) == 1, frame
        if name in SERVER_EVENTS:
            assert_matches_schema(name, args[0])
        return name, args[0]

    async def wait_closed(self, timeout: float = TIMEOUT_S) -> int:
        """Wait for the server's close; frames before it stay unread. Returns the close code."""
        while True:
            frame = await self._read(timeout)
            if frame is None:
                assert self.close_code is not None
                return self.close_code
            self.backlog.append(frame)

    async def receive_nothing(self, timeout: float = QUIET_S) -> bool:
        """True when no frame is unread and none arrives within ``timeout`` (a close is not a frame)."""
        if self.backlog:
            return False
        await asyncio.sleep(timeout)
        while not self.inbox.empty():
            if self.inbox.get_nowait() is not None:
                return False
            self.is_closed_seen = True
        return True

    # -- writing ---------------------------------------------------------------------

    async def send(self, frame: str | bytes) -> None:
        """Write one frame."""
        if isinstance(frame, str):
            await asyncio.wait_for(self.communicator.send_to(text_data=frame), TIMEOUT_S)
        else:
            await asyncio.wait_for(self.communicator.send_to(bytes_data=frame), TIMEOUT_S)

    async def emit(self, event: str, *args: Any) -> None:
        """``42[event, *args]`` (no ack id: failures come back as `error` events)."""
        await self.send("42" + json.dumps([event, *args]))

    async def call(self, event: str, *args: Any, timeout: float = TIMEOUT_S) -> Any:
        """``42<id>[event, *args]`` and wait for ``43<id>[reply]``; returns ``reply``.

        Frames that arrive before the ack stay unread (in order) for :meth:`event`.
        """
        self._last_ack_id += 1
        ack_id = self._last_ack_id
        await self.send(f"42{ack_id}" + json.dumps([event, *args]))
        prefix = f"43{ack_id}["
        seen: list[str | bytes] = []
        try:
            while True:
                frame = await self._read(timeout)
                if frame is None:
                    pytest.fail(f"closed (code {self.close_code}) before the ack of {event!r}")
                if isinstance(frame, str) and frame.startswith(prefix):
                    (reply,) = json.loads(frame[len(prefix) - 1 :])
                    return reply
                seen.append(frame)
        finally:
            self.backlog.extend(seen)

    async def join(self, room_id: str, **extra: Any) -> dict[str, Any]:
        """``join_room`` with an ack; on success also reads this socket's ``joined`` event.

        Returns:
            The ack payload.
        """
        reply = await self.call("join_room", {"roomId": room_id, **extra})
        if reply.get("ok"):
            name, payload = await self.event()
            assert name == "joined", (name, payload)
            assert {"ok": True, **payload} == reply
        return dict(reply)

    async def disconnect(self) -> None:
        """The client goes away (``websocket.disconnect``); a no-op once the consumer ended."""
        if not self.communicator.future.done():
            await self.communicator.send_input({"type": "websocket.disconnect", "code": 1000})
            with contextlib.suppress(TimeoutError):
                await self.communicator.wait(TIMEOUT_S)
        self.stop_reading()


@dataclasses.dataclass
class PollResponse:
    """One finished long-polling response."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


class PollRequest:
    """One HTTP request to ``/socket.io/`` whose response may be held open (a pending GET)."""

    def __init__(self, communicator: ApplicationCommunicator) -> None:
        self.communicator = communicator
        self._response: PollResponse | None = None

    async def response(self, timeout: float = TIMEOUT_S) -> PollResponse:
        """Wait for the response, then end the request as a client does."""
        if self._response is not None:
            return self._response
        try:
            start = await self.communicator.receive_output(timeout)
            assert start["type"] == "http.response.start", start
            body = b""
            while True:
                chunk = await self.communicator.receive_output(timeout)
                assert chunk["type"] == "http.response.body", chunk
                body += chunk.get("body", b"")
                if not chunk.get("more_body", False):
                    break
        except TimeoutError:
            pytest.fail(f"no HTTP response within {timeout} s")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start.get("headers", [])}
        self._response = PollResponse(start["status"], headers, body)
        await self.communicator.send_input({"type": "http.disconnect"})
        with contextlib.suppress(TimeoutError):
            await self.communicator.wait(TIMEOUT_S)
        return self._response

    async def is_pending(self, timeout: float = QUIET_S) -> bool:
        """True when no response starts within ``timeout``."""
        return self._response is None and bool(await self.communicator.receive_nothing(timeout))

    async def client_gone(self) -> None:
        """The client drops the request before the answer (``http.disconnect``)."""
        await self.communicator.send_input({"type": "http.disconnect"})
        with contextlib.suppress(TimeoutError):
            await self.communicator.wait(TIMEOUT_S)


class Harness:
    """The signaling application of one test, and the clients connected to it."""

    def __init__(self) -> None:
        self._app: Any = None
        self.clients: list[WsClient] = []
        self.requests: list[PollRequest] = []

    @property
    def app(self) -> Any:
        """``build_application(...)``, built on first use from the settings of that moment."""
        if self._app is None:
            self._app = build_application(get_asgi_application())
        return self._app

    # -- websocket -------------------------------------------------------------------

    async def ws(
        self,
        query: str = "",
        *,
        headers: Iterable[tuple[bytes, bytes]] = (),
        answers_pings: bool = True,
        expect_open: bool = True,
    ) -> WsClient:
        """Open a websocket to ``/socket.io/?EIO=4&transport=websocket[&query]``.

        With ``expect_open`` the connection must be accepted and the OPEN packet is read
        into ``client.open_packet``; without it, the accept (or refusal: ``close_code``)
        is all that is read.
        """
        path = f"{SOCKET_IO_PATH}?{WS_QUERY}" + (f"&{query}" if query else "")
        communicator = WebsocketCommunicator(self.app, path, headers=list(headers))
        communicator.scope["client"] = CLIENT_ADDRESS
        communicator.scope["server"] = SERVER_ADDRESS
        client = WsClient(communicator, answers_pings=answers_pings)
        self.clients.append(client)
        is_accepted, code = await communicator.connect(timeout=TIMEOUT_S)
        if not is_accepted:
            client.close_code = int(code)
            client.is_closed_seen = True
            assert not expect_open, f"websocket refused with {code}"
            return client
        client.start_reading()
        if expect_open:
            frame = await client.frame()
            assert isinstance(frame, str) and frame.startswith("0{"), frame
            client.open_packet = json.loads(frame[1:])
        return client

    async def connect(
        self,
        agent_id: str = "agent-alice",
        *,
        token: str | None = None,
        answers_pings: bool = True,
    ) -> WsClient:
        """A websocket session connected to ``/`` with ``auth: {token}``; ``connected`` read."""
        client = await self.ws(answers_pings=answers_pings)
        token = token if token is not None else mint_agent_token(agent_id)
        await client.send("40" + json.dumps({"token": token}))
        accepted = await client.frame()
        assert isinstance(accepted, str) and accepted.startswith("40{"), accepted
        client.client_id = json.loads(accepted[2:])["sid"]
        client.agent_id = agent_id
        assert await client.event() == (
            "connected",
            {"clientId": client.client_id, "agentId": agent_id, "iceServers": []},
        )
        return client

    async def in_room(self, agent_id: str, room_id: str, **connect: Any) -> WsClient:
        """A connected session that has joined ``room_id`` (its ``joined`` read)."""
        client = await self.connect(agent_id, **connect)
        reply = await client.join(room_id)
        assert reply["ok"] is True, reply
        return client

    # -- long-polling ----------------------------------------------------------------

    async def request(
        self,
        method: str,
        query: str = POLLING_QUERY,
        body: bytes = b"",
        *,
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> PollRequest:
        """Send one HTTP request to ``/socket.io/?query``; its response may come later."""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": SOCKET_IO_PATH,
            "raw_path": SOCKET_IO_PATH.encode(),
            "root_path": "",
            "query_string": query.encode(),
            "headers": [(b"host", b"127.0.0.1:8080"), *headers],
            "client": CLIENT_ADDRESS,
            "server": SERVER_ADDRESS,
        }
        communicator = ApplicationCommunicator(self.app, scope)
        await communicator.send_input({"type": "http.request", "body": body, "more_body": False})
        request = PollRequest(communicator)
        self.requests.append(request)
        return request

    async def get(self, sid: str | None = None, **kwargs: Any) -> PollRequest:
        """A polling GET (the handshake without ``sid``)."""
        query = POLLING_QUERY + (f"&sid={sid}" if sid else "")
        return await self.request("GET", query, **kwargs)

    async def post(self, sid: str, body: str | bytes, **kwargs: Any) -> PollResponse:
        """A polling POST; returns its response."""
        raw = body.encode() if isinstance(body, str) else body
        request = await self.request("POST", f"{POLLING_QUERY}&sid={sid}", raw, **kwargs)
        return await request.response()

    async def polling_handshake(self) -> dict[str, Any]:
        """GET without ``sid``: returns the OPEN packet's data."""
        response = await (await self.get()).response()
        assert response.status == 200, response
        assert response.text.startswith("0{"), response.text
        return dict(json.loads(response.text[1:]))

    # -- teardown --------------------------------------------------------------------

    async def close(self) -> None:
        """Close every live session and stop every communicator."""
        for conn in list(Connection.registry.values()):
            await asyncio.wait_for(conn.close(), TIMEOUT_S)
        for client in self.clients:
            await client.disconnect()
        for request in self.requests:
            request.communicator.stop(exceptions=False)


@pytest.fixture
async def fresh_instance() -> AsyncIterator[None]:
    """A new instance and session registry, and an empty in-memory channel layer, per test."""
    reset_instance()
    Connection.registry.clear()
    layer = get_channel_layer()
    await layer.flush()
    yield
    await asyncio.wait_for(get_instance().stop(), TIMEOUT_S)
    # The ORM threads keep their connections (CONN_MAX_AGE): close them, or PostgreSQL
    # refuses to drop the test database at the end of the session.
    await asyncio.to_thread(close_db_threads)
    reset_instance()
    Connection.registry.clear()
    await layer.flush()


@pytest.fixture
async def signaling(fresh_instance: None) -> AsyncIterator[Harness]:
    """The in-process signaling server of this test (built lazily: set settings first)."""
    harness = Harness()
    yield harness
    await harness.close()


@pytest.fixture
def signaling_config(settings: Any) -> Callable[..., None]:
    """``signaling_config(heartbeat_interval_ms=50, ...)``: replace ``settings.SIGNALING`` fields."""

    def replace(**fields: Any) -> None:
        settings.SIGNALING = dataclasses.replace(django_settings.SIGNALING, **fields)

    return replace


@pytest.fixture
def open_room() -> Callable[..., Any]:
    """``await open_room(**fields)``: a room made by ``rooms.services.create_room`` (async)."""

    async def create(**overrides: Any) -> Room:
        fields: dict[str, Any] = {"name": "My Voice Room", "room_type": "voice", "created_by": "agent-fawzi"}
        fields.update(overrides)
        return await sync_to_async(room_services.create_room)(**fields)

    return create


@pytest.fixture
def room_row() -> Callable[..., Any]:
    """``await room_row(room_id)``: the room as the database has it now (async)."""

    async def load(room_id: str) -> Room:
        return await sync_to_async(Room.objects.get)(pk=room_id)

    return load


@pytest.fixture
def update_room() -> Callable[..., Any]:
    """``await update_room(room_id, **fields)``: one UPDATE of the row (move deadlines)."""

    async def update(room_id: str, **fields: Any) -> None:
        await sync_to_async(Room.objects.filter(pk=room_id).update)(**fields)

    return update
