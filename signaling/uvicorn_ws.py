"""uvicorn's websockets-sansio protocol with a lighter path per message and per socket (issue #12).

``manage.py serve --server uvicorn`` runs uvicorn with ``--ws signaling.uvicorn_ws:WebSocketProtocol``
(uvicorn imports a ``--ws`` value that is not one of its names). :class:`WebSocketProtocol` is
uvicorn's ``WebSocketsSansIOProtocol`` (what ``--ws auto`` picks) with these changes:

1. **Whole frames are read without websockets' parser.** A read that starts at a frame boundary
   has its unfragmented, masked text/binary frames (16-bit length at most, within ``max_size``,
   valid UTF-8 for text) queued for the application here, as websockets' ``Frame.parse`` and
   uvicorn's ``handle_text``/``handle_bytes`` would: no generator chain, ``Frame`` object or
   buffer copies per message. The first frame of any other kind (control, fragment, reserved
   bits, 64-bit length, ...) and everything after it go to websockets' parser, which is at a
   frame boundary then; a frame split across reads waits in :attr:`partial` (up to 64 KiB).
2. **Reads are paused only when the application falls behind.** Stock uvicorn pauses the
   transport after every received message and resumes it when the application has taken it:
   with uvloop, one ``uv_read_stop``/``uv_read_start`` per message, and two ``epoll_ctl`` calls
   on the next loop turn (libuv re-adds the descriptor, gets ``EEXIST``, modifies it). Here a read
   pauses the transport only if messages of the previous read are still waiting in the queue:
   an application that keeps up is never paused, one that does not is paused one read later
   than stock (what waits is bounded by two reads plus one message, against one read).
3. **A text or binary message is framed here**, in one ``transport.write`` of header + payload:
   the same bytes websockets' ``send_text``/``send_binary`` produce for a server frame without
   extensions (no ``Frame`` object, ``check()``, ``BytesIO`` and list join per message). Taken only
   while the connection is open, has no extension, is not mid-fragment, has nothing else queued
   for writing and websockets' debug logging is off; anything else goes the stock way.
4. **Per socket**: the ASGI receive queue is :class:`signaling.daphne_app_queue.AppQueue`
   (``asyncio.Queue``'s three deques and ``Event`` are ~3 KB per idle socket), the writable flag
   is :class:`WritableFlag` (``asyncio.Event`` with its deque: ~0.7 KB), and the handshake's
   request and response objects are dropped once the handshake is answered (uvicorn and
   websockets' parser generator keep both for the life of the socket).

The handshake, closes, pings, errors, limits and back-pressure on writes stay uvicorn's and
websockets' own code. (``manage.py serve`` also turns uvicorn's keepalive pings off:
``--ws-ping-interval 0``; that is configuration, not this module.)

It relies on the source of the uvicorn and websockets functions named in :data:`RELIED_ON`
(sha256 of ``inspect.getsource``) and on :data:`TESTED_UVICORN` / :data:`TESTED_WEBSOCKETS`.
When any of them differs, :class:`WebSocketProtocol` *is* uvicorn's stock class and a warning
says so; ``signaling/tests/integration/test_server_internals.py`` fails on such an upgrade.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, apply_mask  # type: ignore[attr-defined]  # Frame.parse's apply_mask
from websockets.protocol import OPEN, Protocol
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

from signaling.daphne_app_queue import AppQueue
from signaling.source_guard import source_sha256

logger = logging.getLogger(__name__)

TESTED_UVICORN = "0.54.0"
TESTED_WEBSOCKETS = "17.4"
# sha256 of inspect.getsource(...) in the tested releases: the code this module overrides,
# reproduces or reaches into. A change in any of them means reading this module again.
RELIED_ON: dict[str, tuple[Callable[..., Any], str]] = {
    "WebSocketsSansIOProtocol.__init__": (
        WebSocketsSansIOProtocol.__init__,
        "631dcd744eab875ffd404bbda22f9dd0db25b90e2585748710bce88357dce74b",
    ),
    "WebSocketsSansIOProtocol.data_received": (
        WebSocketsSansIOProtocol.data_received,
        "c89d394077d8841d253e469eb47bfd9db0172cd7eebe38edf5211c8e312885d0",
    ),
    "WebSocketsSansIOProtocol.handle_connect": (
        WebSocketsSansIOProtocol.handle_connect,
        "fc648c2161ff8e135e839d563d00499e26c6a00083466ce95aa27428d37af30a",
    ),
    "WebSocketsSansIOProtocol.send_receive_event_to_app": (
        WebSocketsSansIOProtocol.send_receive_event_to_app,
        "a2b10de91477dc1d4d0e7c9065b85388a5b2a6ebeb84d6ec1591e112ca0bfbb9",
    ),
    "WebSocketsSansIOProtocol.receive": (
        WebSocketsSansIOProtocol.receive,
        "1dc0e715390021a105cfe6abb35a730af9c5be3d71043329a39bbc1c5afe66bc",
    ),
    "WebSocketsSansIOProtocol.send": (
        WebSocketsSansIOProtocol.send,
        "d4919ed760ce9f7be8574989b91ed67448f210ff9cc114f38d286487ec1ddfc8",
    ),
    "WebSocketsSansIOProtocol.pause_writing": (
        WebSocketsSansIOProtocol.pause_writing,
        "4830f7e0d81f877d9d664cf64b692d1c18946e68b3bc261d9a62ae64c72c0023",
    ),
    "WebSocketsSansIOProtocol.resume_writing": (
        WebSocketsSansIOProtocol.resume_writing,
        "ef79384e5fff077c02bde6132f87b99d1b4117d7161ade9146513216492cc4db",
    ),
    "WebSocketsSansIOProtocol.connection_lost": (
        WebSocketsSansIOProtocol.connection_lost,
        "dd116afc4d8034e11baebc28faf53f4f0f15181c4ea1a0e49cc9fdf45056cc97",
    ),
    "Protocol.send_text": (Protocol.send_text, "9268f18e580a5d679489ebcc8054316f6686319596d977b13d679cdd2f8ab1a6"),
    "Protocol.send_binary": (Protocol.send_binary, "a001f8bb8a651d9b228ad1d39f879be86a8fb4fd720de1ec0f436f886d0ae2ac"),
    "Protocol.send_frame": (Protocol.send_frame, "e20fcfacea14cacd021869612d6c369c11ad08b69bff1e45050d6c046b3f848d"),
    "Protocol.parse": (Protocol.parse, "45aaf900644b63c46eee7cd7e28c53182cf53acac614aa93ed5a6a090fe95cc0"),
    "Frame.serialize": (Frame.serialize, "2aeba0b89df2e975017129c7e5e5cc33d50dafae4d9ce909df07d15a201666d8"),
    "Frame.parse": (Frame.parse, "2964f6b18f3ae45da1b7fd64fa7dbb779517c0139c4cefcba1f4e880aee92dea"),
    "Protocol.recv_frame": (Protocol.recv_frame, "4f83d3b90ea62428e18d55362bd208220982b46b83a823c76d6c19f1c5c2637b"),
    "WebSocketsSansIOProtocol.handle_events": (
        WebSocketsSansIOProtocol.handle_events,
        "b2c9351a5d13493ffc405990188f9004e3695036aada077ad026f7754b2293b3",
    ),
    "WebSocketsSansIOProtocol.handle_text": (
        WebSocketsSansIOProtocol.handle_text,
        "6ae523180cf04a012bde88d4eb7fc1429d4e60ee8dc7cbf0f004288a3e657a8f",
    ),
    "WebSocketsSansIOProtocol.handle_bytes": (
        WebSocketsSansIOProtocol.handle_bytes,
        "2b22b21bf8feb4bfefa76e88e83d7bc1b765119f5982f314b0a86a2618f08799",
    ),
    "ServerProtocol.parse": (ServerProtocol.parse, "8c4d10340de4d32f573bd1c7c0e0b40374579dda3173abd82aedf3f6ffa07ea4"),
    "StreamReader.at_eof": (StreamReader.at_eof, "106a9f1e43abf91f47c959ba8f26958de29abd9d02a1a0d9e2c99b9e68f3d23d"),
}

_HEADER_16 = struct.Struct("!BBH").pack
_HEADER_64 = struct.Struct("!BBQ").pack
_FIN_TEXT = 0x81
_FIN_BINARY = 0x82
# A frame read without websockets' parser and not whole in one read waits for the next one
# when it is at most this long (header included); longer ones go to websockets' buffer.
PARTIAL_LIMIT = 65536
_PROTOCOL_PARSE = Protocol.parse.__code__
_AT_EOF = StreamReader.at_eof.__code__


def changed_internals() -> list[str]:
    """What differs from the releases this module was written against (empty: all as tested)."""
    changed = []
    if version("uvicorn") != TESTED_UVICORN:
        changed.append(f"uvicorn {version('uvicorn')} (tested {TESTED_UVICORN})")
    if version("websockets") != TESTED_WEBSOCKETS:
        changed.append(f"websockets {version('websockets')} (tested {TESTED_WEBSOCKETS})")
    changed += [name for name, (func, sha) in RELIED_ON.items() if source_sha256(func) != sha]
    return changed


def frame_header(opcode_byte: int, length: int) -> bytes:
    """The header of an unmasked, final, extension-less frame (RFC 6455 5.2), as websockets writes it."""
    if length < 126:
        return bytes((opcode_byte, length))
    if length < 65536:
        return _HEADER_16(opcode_byte, 126, length)
    return _HEADER_64(opcode_byte, 127, length)


class WritableFlag:
    """The part of ``asyncio.Event`` uvicorn's protocol uses for "the transport takes writes"."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


def _parser_at_frame_boundary(conn: ServerProtocol) -> bool:
    """True when websockets' parser waits for the first byte of a frame, nothing buffered.

    ``conn.parser`` is ``ServerProtocol.parse``, which after the handshake delegates to
    ``Protocol.parse`` (and keeps the parsed request in its suspended frame), or the bare
    ``Protocol.parse`` that :meth:`LeanWebSocketsSansIOProtocol.handle_connect` put in its place;
    between frames ``Protocol.parse`` waits in ``StreamReader.at_eof``.
    """
    parser: Any = conn.parser
    if parser.gi_code is not _PROTOCOL_PARSE:
        parser = parser.gi_yieldfrom
        if parser is None or parser.gi_code is not _PROTOCOL_PARSE:
            return False
    waiting = parser.gi_yieldfrom
    return waiting is not None and waiting.gi_code is _AT_EOF and not conn.reader.buffer


class LeanWebSocketsSansIOProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol with the changes of this module's docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = AppQueue()  # type: ignore[assignment]
        self.writable = WritableFlag()  # type: ignore[assignment]

    # The start of a frame read without websockets' parser, waiting for the rest of it.
    partial = b""

    def data_received(self, data: bytes) -> None:
        # Messages of the previous read not yet taken: the application is behind.
        behind = not self.queue.empty()
        if self.partial:
            data, self.partial = self.partial + data, b""
        conn = self.conn
        if (
            conn.state is OPEN
            and not self.close_sent
            and not conn.reader.buffer
            and conn.current_size is None
            and conn.max_fragment_size is None
            and not conn.extensions
            and not conn.debug
            and _parser_at_frame_boundary(conn)
        ):
            data = self.take_whole_frames(data)
        if data:
            super().data_received(data)
        if behind and not self.read_paused and not self.queue.empty() and not self.close_sent:
            self.read_paused = True
            self.transport.pause_reading()

    def take_whole_frames(self, data: bytes) -> bytes:
        """Queue the unfragmented text/binary frames at the start of ``data``; return the rest.

        What websockets' ``Frame.parse`` and uvicorn's ``handle_text``/``handle_bytes`` do for such
        a frame, without the parser's generators, ``Frame`` objects and buffer copies. It stops
        at the first frame that is anything else (control, fragment, reserved bits, unmasked,
        a 64-bit length, over ``max_size``, not valid UTF-8): that frame and the rest go to
        websockets' parser, which is then at a frame boundary, as if it had parsed these itself.
        The start of a frame it would take (up to :data:`PARTIAL_LIMIT` bytes whole) waits in
        :attr:`partial` for the next read.
        """
        end_of_data = len(data)
        max_size = self.conn.max_message_size
        put = self.queue.put_nowait
        pos = 0
        while pos < end_of_data:
            first = data[pos]
            if first != _FIN_TEXT and first != _FIN_BINARY:
                break
            if end_of_data - pos < 4:  # the rest of the header in the next read
                self.partial = data[pos:]
                return b""
            second = data[pos + 1]
            if not second & 0x80:  # a client's frame must be masked
                break
            length = second & 0x7F
            head = pos + 2
            if length == 126:
                length = (data[head] << 8) | data[head + 1]
                head += 2
            elif length == 127:
                break
            if max_size is not None and length > max_size:
                break
            end = head + 4 + length
            if end > end_of_data:
                if end - pos <= PARTIAL_LIMIT:
                    self.partial = data[pos:]
                    return b""
                break
            payload = apply_mask(data[head + 4 : end], data[head : head + 4])
            if first == _FIN_TEXT:
                try:
                    text = payload.decode()
                except UnicodeDecodeError:
                    break
                put({"type": "websocket.receive", "text": text})
            else:
                put({"type": "websocket.receive", "bytes": payload})
            pos = end
        return data[pos:] if pos else data

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        conn = self.conn
        if self.response.status_code == 101 and _parser_at_frame_boundary(conn):
            conn.parser = Protocol.parse(conn)
            next(conn.parser)
        self.request = None  # type: ignore[assignment]

    def send_receive_event_to_app(self) -> None:
        # uvicorn's, without the pause after every message (data_received pauses instead).
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return
        if self.curr_msg_data_type == "text":
            try:
                self.queue.put_nowait({"type": "websocket.receive", "text": data.decode()})
            except UnicodeDecodeError:  # pragma: no cover (websockets checks UTF-8 first)
                self.logger.exception("Invalid UTF-8 sequence received from client.")
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": data})

    async def send(self, message: Any) -> None:
        if message["type"] == "websocket.send" and self.handshake_complete:
            conn = self.conn
            if (
                self.writable._set  # type: ignore[attr-defined]
                and not self.close_sent
                and not self.disconnected
                and self.initial_response is None
                and conn.state is OPEN
                and not conn.extensions
                and not conn.expect_continuation_frame
                and not conn.writes
                and not conn.debug
            ):
                payload = message.get("bytes")
                if payload is not None:
                    opcode = _FIN_BINARY
                else:
                    text = message.get("text")
                    if text is None:
                        return  # stock: nothing framed, an empty write
                    payload = text.encode()
                    opcode = _FIN_TEXT
                self.transport.write(frame_header(opcode, len(payload)) + payload)
                return
        await super().send(message)
        if self.handshake_complete and self.response is not None:
            self.response = None  # type: ignore[assignment]


def choose_protocol(changed: list[str]) -> type[asyncio.Protocol]:
    """The lean protocol when nothing relied on changed; else uvicorn's own, with a warning."""
    if not changed:
        return LeanWebSocketsSansIOProtocol
    logging.basicConfig()
    logger.warning(
        "uvicorn's websocket protocol is not the tested one (%s): running uvicorn's stock "
        "websockets-sansio protocol (see signaling/uvicorn_ws.py)",
        ", ".join(changed),
    )
    return WebSocketsSansIOProtocol


WebSocketProtocol = choose_protocol(changed_internals())
