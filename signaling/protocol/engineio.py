"""Engine.IO v4 packet codec: WebSocket frames and HTTP long-polling payloads.

Owns: ``EioPacketType``, ``EioPacket``, the per-frame codec (``decode_ws_frame`` /
``encode_ws_frame``), the polling payload codec (``\\x1e``-separated, binary as ``b`` +
base64) and the JSON text of the OPEN (handshake) packet.

Never imports: Django, channels, asyncio, time, random, os, uuid; does no I/O.
Implements: Engine.IO protocol v4 (socketio/socket.io docs/engine.io-protocol/v4-current.md),
sections "Protocol", "Handshake" and "Packet encoding".

The session (``session.py``) does not allocate an ``EioPacket`` per frame on its hot path;
these functions are the reference codec, used for the less frequent packets and by tests.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from signaling.protocol.errors import RemoteProtocolError

__all__ = [
    "BINARY_PREFIX",
    "RECORD_SEPARATOR",
    "EioPacket",
    "EioPacketType",
    "decode_polling_payload",
    "decode_ws_frame",
    "encode_polling_item",
    "encode_polling_payload",
    "encode_ws_frame",
    "open_packet_data",
]

# Engine.IO v4 "Packet encoding / HTTP long-polling": packets are separated by the record
# separator, and binary payloads are base64-encoded and prefixed with a "b".
RECORD_SEPARATOR = "\x1e"
BINARY_PREFIX = "b"


class EioPacketType(IntEnum):
    """Engine.IO v4 packet types ("Protocol" table)."""

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


@dataclass(frozen=True, slots=True)
class EioPacket:
    """One Engine.IO packet.

    ``data`` is ``None`` for a packet without payload, a ``str`` for a text payload and
    ``bytes`` for a binary MESSAGE. A MESSAGE without payload decodes as ``data == ""``.
    """

    type: EioPacketType
    data: str | bytes | None = None


# Index = the type digit's code point minus ord("0"); a tuple lookup beats IntEnum(...).
_TYPES_BY_DIGIT: tuple[EioPacketType, ...] = tuple(EioPacketType)
_DIGITS = "0123456789"


def _decode_text(text: str) -> EioPacket:
    if not text:
        raise RemoteProtocolError("empty Engine.IO packet")
    digit = _DIGITS.find(text[0])
    if digit < 0 or digit >= len(_TYPES_BY_DIGIT):
        raise RemoteProtocolError(f"unknown Engine.IO packet type {text[:1]!r}")
    packet_type = _TYPES_BY_DIGIT[digit]
    if len(text) > 1:
        return EioPacket(packet_type, text[1:])
    return EioPacket(packet_type, "" if packet_type is EioPacketType.MESSAGE else None)


def decode_ws_frame(frame: str | bytes) -> EioPacket:
    """Decode one WebSocket frame (one Engine.IO packet per frame).

    A text frame starts with the type digit; a binary frame is a binary MESSAGE as is.

    Raises:
        RemoteProtocolError: empty text frame or unknown packet type.
    """
    if isinstance(frame, str):
        return _decode_text(frame)
    return EioPacket(EioPacketType.MESSAGE, bytes(frame))


def encode_ws_frame(packet: EioPacket) -> str | bytes:
    """Encode one packet as one WebSocket frame; bytes data becomes a raw binary frame."""
    data = packet.data
    if data is None:
        return _DIGITS[packet.type]
    if isinstance(data, str):
        return _DIGITS[packet.type] + data
    return bytes(data)


def decode_polling_payload(body: str) -> list[EioPacket]:
    """Decode an HTTP long-polling payload (a POST body) into its packets.

    Raises:
        RemoteProtocolError: an empty or unknown packet, or bad base64 after ``b``.
    """
    packets: list[EioPacket] = []
    for part in body.split(RECORD_SEPARATOR):
        if part[:1] == BINARY_PREFIX:
            try:
                data = base64.b64decode(part[1:], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise RemoteProtocolError(
                    "bad base64 in binary polling packet"
                ) from exc
            packets.append(EioPacket(EioPacketType.MESSAGE, data))
        else:
            packets.append(_decode_text(part))
    return packets


def encode_polling_item(item: str | bytes) -> str:
    """Turn one wire item (a text packet or a binary message) into its polling form."""
    if isinstance(item, str):
        return item
    return BINARY_PREFIX + base64.b64encode(item).decode("ascii")


def encode_polling_payload(packets: Iterable[EioPacket]) -> str:
    """Encode packets as one HTTP long-polling payload (a GET response body)."""
    return RECORD_SEPARATOR.join(
        encode_polling_item(encode_ws_frame(packet)) for packet in packets
    )


def open_packet_data(
    sid: str,
    *,
    upgrades: list[str],
    ping_interval_ms: int,
    ping_timeout_ms: int,
    max_payload_bytes: int,
) -> str:
    """Return the JSON text carried by the OPEN packet (Engine.IO v4 "Handshake")."""
    # camelCase keys: this dict is the wire shape of the handshake (STYLE.md section 2).
    return json.dumps(
        {
            "sid": sid,
            "upgrades": upgrades,
            "pingInterval": ping_interval_ms,
            "pingTimeout": ping_timeout_ms,
            "maxPayload": max_payload_bytes,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )
