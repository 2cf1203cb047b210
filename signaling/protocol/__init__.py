"""Sans-IO core of the signaling server: Engine.IO v4 + Socket.IO v5 codecs and sessions.

Owns: the public names of ``signaling.protocol`` (re-exported from its modules).
Never imports: Django, channels, asyncio, time, random, os, uuid (checked by
``signaling/tests/unit/test_protocol_purity.py``): text / bytes in, typed events and
text / bytes out; time enters as ``now`` and ids are passed in (STYLE.md section 1).
Implements: SPEC.md section 3 (the Socket.IO wire contract).
"""

from signaling.protocol.engineio import (
    RECORD_SEPARATOR,
    EioPacket,
    EioPacketType,
    decode_polling_payload,
    decode_ws_frame,
    encode_polling_payload,
    encode_ws_frame,
    open_packet_data,
)
from signaling.protocol.errors import (
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from signaling.protocol.session import (
    TRANSITIONS,
    CloseReason,
    EioMessageReceived,
    EngineSession,
    Event,
    SessionClosed,
    SessionConfig,
    SessionEvent,
    SessionState,
    SioAckReceived,
    SioConnect,
    SioDisconnect,
    SioEventReceived,
    Transport,
    UpgradeCompleted,
    transition,
)
from signaling.protocol.socketio import (
    SioDecoder,
    SioPacket,
    SioPacketType,
    encode_ack,
    encode_ack_json,
    encode_event,
    encode_packet,
    encode_relayed_event,
)

__all__ = [
    "RECORD_SEPARATOR",
    "TRANSITIONS",
    "CloseReason",
    "EioMessageReceived",
    "EioPacket",
    "EioPacketType",
    "EngineSession",
    "Event",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "SessionClosed",
    "SessionConfig",
    "SessionEvent",
    "SessionState",
    "SioAckReceived",
    "SioConnect",
    "SioDecoder",
    "SioDisconnect",
    "SioEventReceived",
    "SioPacket",
    "SioPacketType",
    "Transport",
    "UpgradeCompleted",
    "decode_polling_payload",
    "decode_ws_frame",
    "encode_ack",
    "encode_ack_json",
    "encode_event",
    "encode_packet",
    "encode_polling_payload",
    "encode_relayed_event",
    "encode_ws_frame",
    "open_packet_data",
    "transition",
]
