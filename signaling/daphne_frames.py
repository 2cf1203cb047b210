"""daphne's websocket frames in one step each: whole text frames in, text frames out.

autobahn, which daphne's websockets run on, reads a frame in about a dozen Python calls
(``processData`` twice, ``onFrameBegin``, ``onMessageBegin``, ``onMessageFrameBegin``,
``onFrameData``, a UTF-8 validator, ``onMessageFrameData``, ``onFrameEnd``,
``onMessageFrameEnd``, ``onMessageEnd``, a cffi unmasker built per frame, a Deferred for its
``message`` observers), and writes one through ``sendMessage`` -> ``sendFrame`` ->
``sendData`` (type asserts, ``struct``, debug log arguments formatted eagerly). Together that
was a quarter of daphne's CPU per relay (docs/benchmarks.md).

:func:`install` gives daphne's ``WebSocketProtocol`` two replacements:

- ``dataReceived``: while the websocket is open and between messages, each complete frame
  that is a whole masked text message (FIN, opcode 1, no RSV bit, a 7- or 16-bit minimal
  length within the payload limits, valid UTF-8) is unmasked, decoded and handed to daphne's
  application queue as daphne's ``onMessage`` does, with autobahn's counters and its
  auto-ping timeout reset kept. The first byte that is anything else (a control frame, a
  fragment, a 64-bit length, a partial frame, invalid UTF-8, a limit passed) and everything
  after it goes to autobahn's own code, which answers it as before (close codes included).
- ``serverSend``: a text message is framed (FIN, opcode 1, unmasked, as autobahn frames it for
  a server without compression or fragmentation) and written to the transport in one call,
  with autobahn's counters kept. Anything else (binary, a state other than open, compression,
  fragmentation, a payload past the limit, a pending send queue, frame logging) takes the
  stock path.

:func:`text_writer` is daphne's ``Server.handle_reply`` of a ``websocket.send`` text message as
a plain call, for the relay path's writes.

Relies on daphne's and autobahn's sources being those of :data:`TESTED` (hashes checked at
install and by ``signaling/tests/integration/test_server_internals.py``, which also compares
the bytes both paths put on a real socket): on any other release nothing is replaced.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from signaling.source_guard import source_sha256

TESTED = {"daphne": "4.2.3", "autobahn": "26.11.1"}

# sha256 (first 16 hex digits) of inspect.getsource(...) of every function whose behaviour the fast paths
# reproduce, in the TESTED releases.
SOURCE_SHA256 = {
    "daphne.ws_protocol:WebSocketProtocol.onMessage": "826cc86d0e2aeef0",
    "daphne.ws_protocol:WebSocketProtocol.serverSend": "345f21330d2a18ce",
    "daphne.server:Server.handle_reply": "9d9dbaea6de0657a",
    "daphne.ws_protocol:WebSocketProtocol.handle_reply": "5331423b1cf2016a",
    "autobahn.twisted.websocket:WebSocketAdapterProtocol.dataReceived": "7997f762de218433",
    "autobahn.twisted.websocket:WebSocketAdapterProtocol._onMessage": "a8cece711929bc21",
    "autobahn.websocket.protocol:WebSocketProtocol._dataReceived": "b6616694f9d65410",
    "autobahn.websocket.protocol:WebSocketProtocol.consumeData": "aaa88196e762438f",
    "autobahn.websocket.protocol:WebSocketProtocol.processData": "25b9c1387a46ab25",
    "autobahn.websocket.protocol:WebSocketProtocol.onFrameBegin": "9537027007767ae4",
    "autobahn.websocket.protocol:WebSocketProtocol.onFrameData": "b39b40e3d1702273",
    "autobahn.websocket.protocol:WebSocketProtocol.onFrameEnd": "c45a45b9bf333417",
    "autobahn.websocket.protocol:WebSocketProtocol.onMessageBegin": "1c5cb3b3e3eb227b",
    "autobahn.websocket.protocol:WebSocketProtocol.onMessageFrameBegin": "68c4eae4de95e1fb",
    "autobahn.websocket.protocol:WebSocketProtocol.onMessageFrameData": "23e4805e8f059816",
    "autobahn.websocket.protocol:WebSocketProtocol.onMessageFrameEnd": "00c94dd299eb55fc",
    "autobahn.websocket.protocol:WebSocketProtocol.onMessageFrame": "f125b1f1668fa11c",
    "autobahn.websocket.protocol:WebSocketProtocol.onMessageEnd": "efff2a43ca8540d0",
    "autobahn.websocket.protocol:WebSocketProtocol.sendMessage": "048d6bcf0d712309",
    "autobahn.websocket.protocol:WebSocketProtocol.sendFrame": "89cc8b024c413aa0",
    "autobahn.websocket.protocol:WebSocketProtocol.sendData": "5dcca425b048b07e",
    "autobahn.util:ObservableMixin.fire": "25429a670af93ea0",
}

_TEXT_FIN = 0x81  # FIN, no RSV bit, opcode 1 (text)
_MASKED = 0x80


def source_hashes() -> dict[str, str]:
    """The current sha256 (16 hex digits) of each function :data:`SOURCE_SHA256` names."""
    return {name: source_sha256(name)[:16] for name in SOURCE_SHA256}


def changed_sources() -> list[str]:
    """The functions whose installed source is not the one the fast paths reproduce."""
    current = source_hashes()
    return [name for name, digest in SOURCE_SHA256.items() if current[name] != digest]


def _unmask(data: bytes, start: int, length: int, mask: bytes) -> bytes:
    """RFC 6455 section 5.3: ``data[start:start+length]`` XOR the repeated 4-byte mask
    (as one big-integer XOR: a few C calls whatever the length)."""
    if not length:
        return b""
    key = int.from_bytes((mask * ((length >> 2) + 1))[:length], "little")
    return (int.from_bytes(data[start : start + length], "little") ^ key).to_bytes(length, "little")


def _header(length: int) -> bytes:
    """The header of an unmasked, final text frame of ``length`` payload bytes."""
    if length <= 125:
        return bytes((_TEXT_FIN, length))
    if length <= 0xFFFF:
        return bytes((_TEXT_FIN, 126)) + length.to_bytes(2, "big")
    return bytes((_TEXT_FIN, 127)) + length.to_bytes(8, "big")


_installed = False


def is_installed() -> bool:
    """True once :func:`install` replaced daphne's frame code in this process."""
    return _installed


def text_writer(server: Any, protocol: Any) -> Any:
    """What ``await server.handle_reply(protocol, {"type": "websocket.send", "text": text})``
    does for an accepted websocket, as a plain call (no coroutine, no message dict): the
    relay hot path's write (``signaling.consumers.server_transports``). Only once
    :func:`install` ran, so daphne is the tested source."""
    connections = server.connections
    state_connecting = protocol.STATE_CONNECTING
    server_send = protocol.serverSend

    def write_text(text: str) -> None:
        entry = connections.get(protocol)
        if entry is None or entry.get("disconnected", None):
            return  # Server.handle_reply: the connection is gone
        if protocol.state == state_connecting:
            raise ValueError("Socket has not been accepted, so cannot send over it")
        if text:
            server_send(text, False)

    return write_text


def install() -> bool:
    """Replace daphne's ``WebSocketProtocol.dataReceived`` and ``serverSend``; False (nothing
    done) when daphne or autobahn is not the tested source."""
    if changed_sources():
        return False
    from autobahn.websocket.protocol import WebSocketProtocol as AutobahnProtocol
    from daphne import ws_protocol

    protocol_class = ws_protocol.WebSocketProtocol
    daphne_logger = ws_protocol.logger
    state_open = AutobahnProtocol.STATE_OPEN
    stock_data_received = protocol_class.dataReceived
    stock_server_send = protocol_class.serverSend

    def data_received(self: Any, data: bytes) -> None:
        if (
            self.state != state_open
            or self.data
            or self.current_frame is not None
            or self.inside_message
            or self._perMessageCompress is not None
            or self.failedByMe
            or self.trackedTimings
            or self.logOctets
            or self.logFrames
            or self._listeners is not None
            or not self.utf8validateIncoming
            or not self.applyMask
        ):
            stock_data_received(self, data)
            return
        n = len(data)
        pos = 0
        max_message = self.maxMessagePayloadSize
        max_frame = self.maxFramePayloadSize
        stats = self.trafficStats
        while n - pos >= 6:
            if data[pos] != _TEXT_FIN:
                break
            second = data[pos + 1]
            if not second & _MASKED:
                break
            length = second & 0x7F
            if length < 126:
                mask_at = pos + 2
            elif length == 126:
                if n - pos < 8:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                if length < 126:
                    break  # not the minimal encoding: autobahn fails the connection
                mask_at = pos + 4
            else:
                break
            end = mask_at + 4 + length
            if end > n or 0 < max_message < length or 0 < max_frame < length:
                break
            try:
                text = _unmask(data, mask_at + 4, length, data[mask_at : mask_at + 4]).decode("utf-8")
            except UnicodeDecodeError:
                break  # autobahn closes with 1007
            pos = end
            # autobahn's bookkeeping of one whole message (_dataReceived, onFrameData, onFrameEnd)
            stats.incomingOctetsWebSocketLevel += length
            stats.incomingOctetsAppLevel += length
            stats.incomingWebSocketFrames += 1
            stats.incomingWebSocketMessages += 1
            if self.autoPingTimeoutCall and self.autoPingRestartOnAnyTraffic:
                self._cancelAutoPingTimeoutCall()
            # daphne's onMessage
            if self.muted:
                daphne_logger.debug("Muting incoming frame on %s", self.client_addr)
                continue
            daphne_logger.debug("WebSocket incoming frame on %s", self.client_addr)
            self.last_ping = time.time()
            self.application_queue.put_nowait({"type": "websocket.receive", "text": text})
            if self.state != state_open:
                break
        stats.incomingOctetsWireLevel += pos  # the rest is counted by autobahn's own code
        if pos < n:
            stock_data_received(self, data[pos:] if pos else data)

    def server_send(self: Any, content: Any, binary: bool = False) -> None:
        if (
            binary
            or self.state != state_open
            or self._perMessageCompress is not None
            or self.trackedTimings
            or self.logFrames
            or self.logOctets
            or self.maskServerFrames
            or self.send_queue
        ):
            stock_server_send(self, content, binary)
            return
        payload = content.encode("utf8")
        length = len(payload)
        if 0 < self.maxMessagePayloadSize < length or 0 < self.autoFragmentSize < length:
            stock_server_send(self, content, binary)
            return
        daphne_logger.debug("Sent WebSocket packet to client for %s", self.client_addr)
        frame = _header(length) + payload
        stats = self.trafficStats
        stats.outgoingWebSocketMessages += 1
        stats.outgoingOctetsAppLevel += length
        stats.outgoingOctetsWebSocketLevel += length
        stats.outgoingWebSocketFrames += 1
        self.transport.write(frame)
        stats.outgoingOctetsWireLevel += len(frame)

    protocol_class.dataReceived = data_received
    protocol_class.serverSend = server_send
    global _installed
    _installed = True
    return True


def install_or_warn() -> None:
    """:func:`install`, with a warning naming what changed when it cannot."""
    changed = changed_sources()
    if changed or not install():
        logging.basicConfig()
        logging.getLogger(__name__).warning(
            "daphne/autobahn differ from %s (%s): websocket frames take autobahn's stock path",
            TESTED,
            ", ".join(changed) or "install failed",
        )
