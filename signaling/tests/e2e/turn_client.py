"""A minimal STUN/TURN client over UDP for the coturn tests: Binding and an authenticated Allocate.

Implements just enough of RFC 5389 (STUN message format, MESSAGE-INTEGRITY with the
long-term credential key MD5(username:realm:password)) and RFC 5766 (Allocate with
REQUESTED-TRANSPORT UDP, the 401 REALM/NONCE challenge, XOR-RELAYED-ADDRESS, Refresh with
LIFETIME 0) to ask a real TURN server whether it accepts a username/credential pair.
Test code only; never imports the server's modules.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct
from dataclasses import dataclass

MAGIC_COOKIE = 0x2112A442
HEADER = struct.Struct("!HHI12s")
# RFC 5389 section 6 / RFC 5766 section 13: message types (method | class bits).
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
ALLOCATE_REQUEST = 0x0003
ALLOCATE_SUCCESS = 0x0103
ALLOCATE_ERROR = 0x0113
REFRESH_REQUEST = 0x0004
# RFC 5389 section 15 / RFC 5766 section 14: attribute types.
ATTR_USERNAME = 0x0006
ATTR_MESSAGE_INTEGRITY = 0x0008
ATTR_ERROR_CODE = 0x0009
ATTR_LIFETIME = 0x000D
ATTR_REALM = 0x0014
ATTR_NONCE = 0x0015
ATTR_XOR_RELAYED_ADDRESS = 0x0016
ATTR_REQUESTED_TRANSPORT = 0x0019
UDP_PROTOCOL_NUMBER = 17
MESSAGE_INTEGRITY_LENGTH = 20
DEFAULT_TIMEOUT_S = 2.0
RECEIVE_BUFFER_BYTES = 2048


@dataclass(frozen=True)
class AllocateResult:
    """What the server answered to the authenticated Allocate."""

    is_success: bool
    error_code: int | None
    relayed_address: tuple[str, int] | None


def _attribute(kind: int, value: bytes) -> bytes:
    padding = b"\0" * (-len(value) % 4)
    return struct.pack("!HH", kind, len(value)) + value + padding


def _message(kind: int, transaction_id: bytes, attributes: bytes, integrity_key: bytes | None = None) -> bytes:
    if integrity_key is None:
        return HEADER.pack(kind, len(attributes), MAGIC_COOKIE, transaction_id) + attributes
    # RFC 5389 section 15.4: the length covers MESSAGE-INTEGRITY; the HMAC covers what precedes it.
    length = len(attributes) + 4 + MESSAGE_INTEGRITY_LENGTH
    head = HEADER.pack(kind, length, MAGIC_COOKIE, transaction_id) + attributes
    digest = hmac.new(integrity_key, head, hashlib.sha1).digest()
    return head + _attribute(ATTR_MESSAGE_INTEGRITY, digest)


def _parse(data: bytes, transaction_id: bytes) -> tuple[int, dict[int, bytes]]:
    kind, length, cookie, received_id = HEADER.unpack_from(data)
    assert cookie == MAGIC_COOKIE and received_id == transaction_id, "not an answer to our request"
    attributes: dict[int, bytes] = {}
    offset = HEADER.size
    while offset < HEADER.size + length:
        attr_kind, attr_length = struct.unpack_from("!HH", data, offset)
        attributes.setdefault(attr_kind, data[offset + 4 : offset + 4 + attr_length])
        offset += 4 + attr_length + (-attr_length % 4)
    return kind, attributes


def _error_code(value: bytes) -> int:
    return value[2] * 100 + value[3]


def _xor_address(value: bytes) -> tuple[str, int]:
    port = struct.unpack_from("!H", value, 2)[0] ^ (MAGIC_COOKIE >> 16)
    address = struct.unpack_from("!I", value, 4)[0] ^ MAGIC_COOKIE
    return socket.inet_ntoa(struct.pack("!I", address)), port


class TurnClient:
    """One UDP socket talking to one TURN server."""

    def __init__(self, host: str, port: int, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.server = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(timeout_s)
        self.sock.bind(("127.0.0.1", 0))

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def _ask(self, kind: int, attributes: bytes, integrity_key: bytes | None = None) -> tuple[int, dict[int, bytes]]:
        transaction_id = os.urandom(12)
        self.sock.sendto(_message(kind, transaction_id, attributes, integrity_key), self.server)
        data, _ = self.sock.recvfrom(RECEIVE_BUFFER_BYTES)
        return _parse(data, transaction_id)

    def binding(self) -> tuple[str, int]:
        """A STUN Binding request; returns the XOR-MAPPED-ADDRESS (our address as seen)."""
        kind, attributes = self._ask(BINDING_REQUEST, b"")
        assert kind == BINDING_SUCCESS, hex(kind)
        return _xor_address(attributes[0x0020])

    def allocate(self, username: str, password: str) -> AllocateResult:
        """Allocate a UDP relay with the long-term credential ``username``/``password``.

        The first, unauthenticated request draws the 401 challenge (REALM, NONCE); the second
        carries USERNAME, REALM, NONCE and MESSAGE-INTEGRITY. On success the allocation is
        released again (Refresh, LIFETIME 0).
        """
        transport = _attribute(ATTR_REQUESTED_TRANSPORT, bytes([UDP_PROTOCOL_NUMBER, 0, 0, 0]))
        kind, challenge = self._ask(ALLOCATE_REQUEST, transport)
        assert kind == ALLOCATE_ERROR and _error_code(challenge[ATTR_ERROR_CODE]) == 401, (hex(kind), challenge)
        realm, nonce = challenge[ATTR_REALM], challenge[ATTR_NONCE]
        # RFC 5389 section 15.4: the long-term credential key is MD5(username:realm:password).
        key = hashlib.md5(f"{username}:{realm.decode()}:{password}".encode()).digest()
        auth = _attribute(ATTR_USERNAME, username.encode()) + _attribute(ATTR_REALM, realm)
        auth += _attribute(ATTR_NONCE, nonce)
        kind, answer = self._ask(ALLOCATE_REQUEST, transport + auth, key)
        if kind != ALLOCATE_SUCCESS:
            code = _error_code(answer[ATTR_ERROR_CODE]) if ATTR_ERROR_CODE in answer else None
            return AllocateResult(False, code, None)
        relayed = _xor_address(answer[ATTR_XOR_RELAYED_ADDRESS])
        self._ask(REFRESH_REQUEST, _attribute(ATTR_LIFETIME, struct.pack("!I", 0)) + auth, key)
        return AllocateResult(True, None, relayed)
