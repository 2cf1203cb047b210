"""Socket.IO v5 packet codec (the default "socket.io-parser" text format plus binary attachments).

Owns: ``SioPacketType``, ``SioPacket``, the general encoder ``encode_packet`` (binary data is
replaced by ``{"_placeholder":true,"num":i}`` and sent as extra binary messages), the text-only
fast paths ``encode_event`` / ``encode_ack``, and the server-side ``SioDecoder`` (one Engine.IO
MESSAGE payload in, at most one validated ``SioPacket`` out).

Never imports: Django, channels, asyncio, time, random, os, uuid; does no I/O.
Implements: Socket.IO protocol v5 (socketio/socket.io docs/socket.io-protocol/v5-current.md),
sections "Exchange protocol" and "Packet encoding"; payload validation follows the reference
parser (socket.io-parser ``isPayloadValid``, reserved event names, at most 10 attachments).

Hot path notes: JSON is encoded / decoded exactly once per packet with pre-built C-accelerated
encoder / decoder objects; a packet's data is scanned for binary only when the encoder trips
over a ``bytes`` value, so text-only packets pay nothing for binary support. The relay path
(``encode_relayed_event``) encodes a peer's decoded data with orjson, which is byte-identical
to the stdlib encoding for everything but floats; decoded floats are :class:`JsonFloat`, which
orjson hands back, so those packets (and anything else orjson refuses) take the stdlib path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NoReturn

import orjson

from signaling.protocol.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "MAX_ACK_ID_DIGITS",
    "MAX_ATTACHMENTS",
    "RESERVED_EVENTS",
    "JsonFloat",
    "SioDecoder",
    "SioPacket",
    "SioPacketType",
    "decode_text_packet",
    "encode_ack",
    "encode_event",
    "encode_packet",
    "incoming_event_name",
    "namespace_prefix",
    "parse_json",
    "utf8_length",
]

# socket.io-parser (>= 4.2.3) refuses more than 10 binary attachments per packet by default:
# an absurd count would otherwise make the decoder buffer unbounded binary frames.
MAX_ATTACHMENTS = 10
# Number.MAX_SAFE_INTEGER has 16 digits: longer ack ids cannot come from a real client.
MAX_ACK_ID_DIGITS = 16
# socket.io-parser RESERVED_EVENTS: a peer may not emit these names (the receiving side
# treats such a packet as invalid and closes the connection).
RESERVED_EVENTS = frozenset(
    {
        "connect",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
    }
)


class SioPacketType(IntEnum):
    """Socket.IO v5 packet types ("Exchange protocol" table)."""

    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


@dataclass(slots=True)
class SioPacket:
    """One Socket.IO packet.

    ``data``: EVENT ``[event, *args]``; ACK ``[*args]``; CONNECT the auth object or ``None``;
    CONNECT_ERROR ``{"message": ..., "data"?: ...}``; DISCONNECT ``None``. Binary values are
    ``bytes`` in place (never placeholders). ``attachments`` is informative only: the encoder
    derives it from ``data``; the decoder reports how many binary messages the packet used.
    """

    type: SioPacketType
    namespace: str = "/"
    data: Any = None
    id: int | None = None
    attachments: int = 0


_ROOT_NAMESPACE = "/"
_DIGITS = "0123456789"
_TYPES_BY_DIGIT: tuple[SioPacketType, ...] = tuple(SioPacketType)
_BINARY_TYPES = (bytes, bytearray, memoryview)
# RFC 8259 section 2: the only JSON whitespace.
_JSON_WHITESPACE = " \t\n\r"


class _BinaryFound(Exception):
    """Raised by the JSON encoder's ``default`` hook: the data holds a bytes-like value."""


def _encode_default(value: object) -> NoReturn:
    if isinstance(value, _BINARY_TYPES):
        raise _BinaryFound
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _reject_constant(name: str) -> NoReturn:
    # JSON.parse in the reference implementation rejects NaN / Infinity; so do we.
    raise ValueError(f"invalid JSON constant {name}")


class JsonFloat(float):
    """A number with a fraction or exponent decoded from a peer's JSON (a ``float`` in all else).

    orjson writes floats differently from the stdlib (``1e16`` against ``1e+16``, NaN as
    ``null``); as a float subclass this one is handed to ``default`` under
    ``OPT_PASSTHROUGH_SUBCLASS``, so data holding it is encoded by the stdlib encoder.
    """

    __slots__ = ()


class _NotForOrjson(Exception):
    """Raised by orjson's ``default`` hook: leave this value to the stdlib encoder."""


def _orjson_default(value: object) -> NoReturn:
    raise _NotForOrjson


def _parse_long_int(digits: str) -> int | float:
    """An integer literal as JSON.parse reads it: one past Python's int-str limit (4300
    digits by default) becomes a float, hence +-Infinity, instead of failing the parse
    (a :class:`JsonFloat`, so the relay's orjson path leaves it to the stdlib encoder)."""
    try:
        return int(digits)
    except ValueError:
        return JsonFloat(digits)


# Built once: json.dumps / json.loads with keyword arguments build a new coder per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_encode_default)
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=JsonFloat)
# Every type but str, int (64-bit), bool, None, list, tuple and dict (str keys) goes to the
# default hook, i.e. to the stdlib encoder.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
_orjson_dumps = orjson.dumps
_OrjsonError = orjson.JSONEncodeError
_encode_json = _ENCODER.encode
_raw_decode_json = _DECODER.raw_decode
# Used only after the C-accelerated parse met an integer too long for int(): the hook makes
# every integer a Python call, which the hot path must not pay.
_raw_decode_lenient = json.JSONDecoder(
    parse_constant=_reject_constant, parse_int=_parse_long_int, parse_float=JsonFloat
).raw_decode


def namespace_prefix(namespace: str) -> str:
    """Return the wire prefix of a namespace: ``""`` for ``"/"``, else ``"<namespace>,"``."""
    if namespace == _ROOT_NAMESPACE:
        return ""
    if not namespace.startswith("/") or "," in namespace:
        # Socket.IO v5 "Format": the namespace is delimited by a comma, without escaping.
        raise LocalProtocolError(f"invalid namespace {namespace!r}")
    return namespace + ","


def _ack_id_text(ack_id: int | None) -> str:
    if ack_id is None:
        return ""
    if type(ack_id) is not int or ack_id < 0:
        raise LocalProtocolError(f"invalid ack id {ack_id!r}")
    return str(ack_id)


def _dumps(data: Any) -> str:
    """Encode text-only data; raises ``_BinaryFound`` when the data holds bytes.

    The result is always valid UTF-8 text: a lone UTF-16 surrogate (a peer may send one as a
    ``\\udXXX`` JSON escape, as JSON.stringify does) becomes U+FFFD, as a JavaScript server
    writing that string to a socket would do. Checked only for non-ASCII output
    (``str.isascii`` is O(1) in CPython), so the decoder's hot path pays nothing.
    """
    try:
        text = _encode_json(data)
    except (TypeError, ValueError, RecursionError) as exc:
        raise LocalProtocolError(f"data is not JSON serialisable: {exc}") from exc
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _deconstruct(value: Any, buffers: list[bytes]) -> Any:
    """Copy ``value`` with every bytes-like replaced by a placeholder, collecting the bytes."""
    if isinstance(value, _BINARY_TYPES):
        buffers.append(bytes(value))
        return {"_placeholder": True, "num": len(buffers) - 1}
    if isinstance(value, (list, tuple)):
        return [_deconstruct(item, buffers) for item in value]
    if isinstance(value, dict):
        return {key: _deconstruct(item, buffers) for key, item in value.items()}
    return value


def _check_outgoing(packet_type: SioPacketType, data: Any, ack_id: int | None) -> None:
    if packet_type in (SioPacketType.EVENT, SioPacketType.BINARY_EVENT):
        if type(data) is not list or not data or type(data[0]) is not str:
            raise LocalProtocolError("EVENT data must be [event_name, *args]")
        if data[0] in RESERVED_EVENTS:
            raise LocalProtocolError(f"{data[0]!r} is a reserved event name")
    elif packet_type in (SioPacketType.ACK, SioPacketType.BINARY_ACK):
        if type(data) is not list:
            raise LocalProtocolError("ACK data must be a list of arguments")
        if ack_id is None:
            raise LocalProtocolError("ACK needs an ack id")
    elif ack_id is not None:
        raise LocalProtocolError(f"{packet_type.name} cannot carry an ack id")
    elif packet_type is SioPacketType.CONNECT:
        if data is not None and type(data) is not dict:
            raise LocalProtocolError("CONNECT data must be an object or None")
    elif packet_type is SioPacketType.DISCONNECT:
        if data is not None:
            raise LocalProtocolError("DISCONNECT carries no data")
    elif type(data) is not dict:  # CONNECT_ERROR
        raise LocalProtocolError('CONNECT_ERROR data must be {"message": ..., "data"?: ...}')


def encode_packet(packet: SioPacket) -> list[str | bytes]:
    """Encode a packet: the text packet first, then one bytes item per binary attachment.

    The packet type is chosen by the content: EVENT / BINARY_EVENT (and ACK / BINARY_ACK)
    are interchangeable on input; data holding bytes is sent as the BINARY_* type.

    Raises:
        LocalProtocolError: data of the wrong shape for the type, unserialisable data, bytes
            outside EVENT / ACK, a bad namespace or ack id.
    """
    packet_type = packet.type
    data = packet.data
    _check_outgoing(packet_type, data, packet.id)
    head = namespace_prefix(packet.namespace) + _ack_id_text(packet.id)
    if packet_type in (SioPacketType.BINARY_EVENT, SioPacketType.BINARY_ACK):
        packet_type = SioPacketType(packet_type - 3)
    if data is None:
        return [_DIGITS[packet_type] + head]
    try:
        return [_DIGITS[packet_type] + head + _dumps(data)]
    except _BinaryFound:
        if packet_type not in (SioPacketType.EVENT, SioPacketType.ACK):
            raise LocalProtocolError(f"{packet_type.name} data cannot hold bytes") from None
    buffers: list[bytes] = []
    try:
        text_data = _deconstruct(data, buffers)
    except RecursionError as exc:
        raise LocalProtocolError("data nested too deeply") from exc
    binary_type = packet_type + 3  # EVENT -> BINARY_EVENT, ACK -> BINARY_ACK
    items: list[str | bytes] = [f"{binary_type}{len(buffers)}-{head}{_dumps(text_data)}"]
    items.extend(buffers)
    return items


def encode_event(
    event: str, data: Any, *, namespace: str = "/", ack_id: int | None = None, offset: str | None = None
) -> str:
    """Encode a text-only EVENT with exactly one argument, e.g. ``2["offer",{"sdp":"x"}]``.

    Byte-identical to ``encode_packet(SioPacket(EVENT, namespace, [event, data], ack_id))[0]``;
    without the Engine.IO ``"4"`` (add it with ``EngineSession.send_sio_text``). ``offset``
    (connection state recovery): appended as one more, last, string argument
    (``2["offer",{...},"<offset>"]``), in the same encode.

    Raises:
        LocalProtocolError: ``data`` holds bytes (use ``encode_packet``) or is not JSON
            serialisable; a reserved event name; a bad namespace or ack id.
    """
    if type(event) is not str or event in RESERVED_EVENTS:
        raise LocalProtocolError(f"invalid event name {event!r}")
    if namespace == _ROOT_NAMESPACE and ack_id is None:
        head = "2"
    else:
        head = "2" + namespace_prefix(namespace) + _ack_id_text(ack_id)
    try:
        return head + _dumps([event, data] if offset is None else [event, data, offset])
    except _BinaryFound:
        raise LocalProtocolError("encode_event is text only: use encode_packet") from None


def encode_relayed_event(event: str, data: dict[str, Any], *, offset: str | None = None) -> str:
    """``encode_event(event, data, offset=offset)`` for a peer's decoded object plus str fields (the relay path).

    Byte-identical to ``encode_event`` for data that came out of this module's decoder with
    str, int, bool or None values added; written by orjson, except when the data holds
    something orjson does not write exactly as the stdlib encoder does (a :class:`JsonFloat`,
    an int beyond 64 bits, a lone surrogate, non-str keys, nesting deeper than orjson's limit,
    any other type): then by ``encode_event``, errors included.

    Raises:
        LocalProtocolError: as ``encode_event``.
    """
    if type(event) is str and event not in RESERVED_EVENTS:
        try:
            args = [event, data] if offset is None else [event, data, offset]
            return "2" + _orjson_dumps(args, default=_orjson_default, option=_ORJSON_OPTIONS).decode()
        except _OrjsonError:
            pass
    return encode_event(event, data, offset=offset)


def encode_ack(ack_id: int, args: list[Any], *, namespace: str = "/") -> str:
    """Encode a text-only ACK, e.g. ``3<ack_id>[...]`` (without the Engine.IO ``"4"``).

    Raises:
        LocalProtocolError: ``args`` holds bytes (use ``encode_packet``) or is not JSON
            serialisable; a bad namespace or ack id.
    """
    if type(args) is not list:
        raise LocalProtocolError("ACK args must be a list")
    head = "3" + namespace_prefix(namespace) + _ack_id_text(ack_id)
    try:
        return head + _dumps(args)
    except _BinaryFound:
        raise LocalProtocolError("encode_ack is text only: use encode_packet") from None


def encode_ack_json(ack_id: int, args_json: str, *, namespace: str = "/") -> str:
    """Encode an ACK whose argument list is JSON text encoded already, e.g. ``'[{"ok":true}]'``.

    For packets whose payload was encoded once for another purpose (or is a constant): the
    caller guarantees ``args_json`` is a JSON array; nothing is parsed or re-encoded.

    Raises:
        LocalProtocolError: ``args_json`` is not a ``[...]`` text; a bad namespace or ack id.
    """
    if type(args_json) is not str or not args_json.startswith("[") or not args_json.endswith("]"):
        raise LocalProtocolError("ACK args must be a JSON array text")
    return "3" + namespace_prefix(namespace) + _ack_id_text(ack_id) + args_json


def parse_json(text: str, start: int) -> Any:
    """Parse the JSON value that fills ``text[start:]`` (no leading whitespace allowed).

    Raises:
        RemoteProtocolError: invalid JSON, NaN / Infinity, nesting too deep, trailing data.
    """
    try:
        value, end = _raw_decode_json(text, start)
    except ValueError as exc:
        if "integer string conversion" not in str(exc):
            raise RemoteProtocolError("invalid JSON payload") from exc
        # Valid JSON with a very long integer: read it as JSON.parse does (Infinity), so the
        # application can refuse the event (it cannot be relayed) instead of the connection.
        try:
            value, end = _raw_decode_lenient(text, start)
        except (ValueError, RecursionError) as lenient_exc:
            raise RemoteProtocolError("invalid JSON payload") from lenient_exc
    except RecursionError as exc:
        raise RemoteProtocolError("invalid JSON payload") from exc
    if end != len(text) and text[end:].strip(_JSON_WHITESPACE):
        raise RemoteProtocolError("trailing data after the JSON payload")
    return value


def utf8_length(text: str, start: int = 0) -> int:
    """Return the UTF-8 byte length of ``text[start:]`` (``str.isascii`` is O(1) in CPython)."""
    if text.isascii():
        return len(text) - start
    return len(text[start:].encode("utf-8", "surrogatepass"))


def _fail(message: str) -> NoReturn:
    raise RemoteProtocolError(message)


def incoming_event_name(value: Any) -> str | None:
    """The event name of a client EVENT's first element, or ``None`` if it is not one.

    socket.io-parser ``isPayloadValid`` accepts a string that is not reserved, or a number;
    socket.io then dispatches a number as the listener key its EventEmitter makes of it, the
    number's decimal text (``42[123]`` reaches ``socket.on("123")``), so a number is returned
    as that text: to the application it is one more (usually unknown) event name.
    """
    kind = type(value)
    if kind is str:
        return None if value in RESERVED_EVENTS else value
    if kind is int:  # bool is not int here: type() is exact
        return str(value)
    if kind is JsonFloat or kind is float:  # JSON has no NaN / Infinity: value is finite
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    return None


def _check_incoming(packet_type: SioPacketType, data: Any, ack_id: int | None) -> None:
    """Validate a client-to-server payload (socket.io-parser ``isPayloadValid``)."""
    if packet_type is SioPacketType.EVENT or packet_type is SioPacketType.BINARY_EVENT:
        if type(data) is not list or not data:
            _fail("EVENT payload must be a non-empty array starting with the event name")
        if incoming_event_name(data[0]) is None:
            _fail(f"invalid or reserved event name {data[0]!r}")
    elif packet_type is SioPacketType.ACK or packet_type is SioPacketType.BINARY_ACK:
        if type(data) is not list:
            _fail("ACK payload must be an array")
        if ack_id is None:
            _fail("ACK without an ack id")
    elif ack_id is not None:
        _fail(f"{packet_type.name} cannot carry an ack id")
    elif packet_type is SioPacketType.CONNECT:
        if data is not None and type(data) is not dict:
            _fail("CONNECT payload must be an object")
    elif packet_type is SioPacketType.DISCONNECT:
        if data is not None:
            _fail("DISCONNECT carries no payload")
    else:
        _fail("CONNECT_ERROR is sent by servers only")


def decode_text_packet(text: str) -> tuple[SioPacket, int]:
    """Decode and validate one text packet; return it and the index where its JSON starts.

    Binary types keep their BINARY_* type and placeholders; ``attachments`` is the announced
    count. Use ``SioDecoder`` to get them reassembled.

    Raises:
        RemoteProtocolError: anything that is not a valid client-to-server packet.
    """
    length = len(text)
    digit = _DIGITS.find(text[:1]) if length else -1
    if digit < 0 or digit >= len(_TYPES_BY_DIGIT):
        _fail(f"unknown Socket.IO packet type {text[:1]!r}")
    packet_type = _TYPES_BY_DIGIT[digit]
    index = 1
    attachments = 0
    if packet_type is SioPacketType.BINARY_EVENT or packet_type is SioPacketType.BINARY_ACK:
        dash = text.find("-", 1, 4)  # at most two digits: MAX_ATTACHMENTS is 10
        count = text[1:dash]
        if dash < 0 or not count or count.strip(_DIGITS):
            _fail("binary packet without a valid '<n>-' attachment count")
        attachments = int(count)
        if attachments > MAX_ATTACHMENTS:
            _fail(f"too many binary attachments ({attachments} > {MAX_ATTACHMENTS})")
        index = dash + 1
    namespace = _ROOT_NAMESPACE
    if index < length and text[index] == "/":
        comma = text.find(",", index)
        if comma < 0:
            namespace = text[index:]
            index = length
        else:
            namespace = text[index:comma]
            index = comma + 1
    ack_id: int | None = None
    digits_end = index
    while digits_end < length and text[digits_end] in _DIGITS:
        digits_end += 1
    if digits_end != index:
        if digits_end - index > MAX_ACK_ID_DIGITS:
            _fail("ack id too long")
        ack_id = int(text[index:digits_end])
        index = digits_end
    data = parse_json(text, index) if index < length else None
    _check_incoming(packet_type, data, ack_id)
    return SioPacket(packet_type, namespace, data, ack_id, attachments), index


def _reconstruct(value: Any, buffers: list[bytes]) -> Any:
    if type(value) is list:
        return [_reconstruct(item, buffers) for item in value]
    if type(value) is dict:
        if value.get("_placeholder") is True:
            num = value.get("num")
            if type(num) is int and 0 <= num < len(buffers):
                return buffers[num]
            _fail(f"invalid attachment placeholder {num!r}")
        return {key: _reconstruct(item, buffers) for key, item in value.items()}
    return value


class SioDecoder:
    """Server-side decoder: Engine.IO MESSAGE payloads in, validated packets out.

    Binary packets are returned NORMALISED: once all their attachments arrived, the packet
    comes back as EVENT / ACK (never BINARY_*) with the placeholders replaced by ``bytes``
    and ``attachments`` set to the number of binary messages used.

    ``data_size_bytes`` is the UTF-8 size of the last returned packet's JSON part plus its
    attachments' sizes.
    """

    __slots__ = ("_buffers", "_is_skipping", "_pending", "_pending_size", "data_size_bytes")

    def __init__(self) -> None:
        self._pending: SioPacket | None = None
        self._buffers: list[bytes] = []
        self._pending_size = 0
        self._is_skipping = False
        self.data_size_bytes = 0

    @property
    def is_reconstructing(self) -> bool:
        """True while a binary packet waits for its attachments."""
        return self._pending is not None

    @property
    def pending_namespace(self) -> str | None:
        """The namespace of the binary packet waiting for its attachments, if any."""
        return self._pending.namespace if self._pending is not None else None

    def skip_pending(self) -> None:
        """Drop the waiting binary packet: its remaining attachments are counted, not kept,
        and it is never returned (the session refused its namespace)."""
        if self._pending is not None and not self._is_skipping:
            self._is_skipping = True
            self._buffers = [b"" for _ in self._buffers]

    def discard_pending(self) -> None:
        """Forget the waiting binary packet at once (the rest of its input is dropped)."""
        self._pending = None
        self._buffers = []
        self._pending_size = 0
        self._is_skipping = False

    def feed(self, message: str | bytes) -> SioPacket | None:
        """Decode one Engine.IO MESSAGE payload.

        Returns:
            The packet, or ``None`` while a binary packet still waits for attachments.

        Raises:
            RemoteProtocolError: invalid packet, text while attachments are awaited, bytes
                when none are, or a bad placeholder.
        """
        if isinstance(message, str):
            if self._pending is not None:
                _fail("text packet while binary attachments are awaited")
            packet, json_start = decode_text_packet(message)
            size = utf8_length(message, json_start)
            if packet.type is SioPacketType.BINARY_EVENT or packet.type is SioPacketType.BINARY_ACK:
                if packet.attachments:
                    self._pending = packet
                    self._buffers = []
                    self._pending_size = size
                    return None
                return self._complete(packet, [], size)
            self.data_size_bytes = size
            return packet
        pending = self._pending
        if pending is None:
            _fail("binary message without a pending binary packet")
        buffers = self._buffers
        self._pending_size += len(message)
        if self._is_skipping:
            # Count the attachment in a placeholder, keep none of its bytes.
            buffers.append(b"")
            if len(buffers) >= pending.attachments:
                self.discard_pending()
            return None
        buffers.append(bytes(message))
        if len(buffers) < pending.attachments:
            return None
        self._pending = None
        self._buffers = []
        return self._complete(pending, buffers, self._pending_size)

    def _complete(self, packet: SioPacket, buffers: list[bytes], size: int) -> SioPacket:
        try:
            data = _reconstruct(packet.data, buffers)
        except RecursionError as exc:
            raise RemoteProtocolError("payload nested too deeply") from exc
        self.data_size_bytes = size
        packet_type = SioPacketType.EVENT if packet.type is SioPacketType.BINARY_EVENT else SioPacketType.ACK
        return SioPacket(packet_type, packet.namespace, data, packet.id, len(buffers))
