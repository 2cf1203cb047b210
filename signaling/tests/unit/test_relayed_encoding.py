"""``encode_relayed_event`` (orjson) against ``encode_event`` (stdlib): the same bytes or the same error.

The relay path encodes a peer's decoded object plus the server's str fields; these tests feed
both encoders such data (decoded by the protocol's own decoder, as the relay does) and
require identical output, or the identical ``LocalProtocolError``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.protocol import LocalProtocolError, encode_event, encode_relayed_event, socketio
from signaling.protocol.socketio import JsonFloat, parse_json

SDP = (
    "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
    + "a=candidate:1 1 udp 2122260223 10.0.0.2 5 typ host\r\n" * 20
)


def decoded(wire_json: str) -> Any:
    """A value as the relay receives it: parsed by the protocol's decoder."""
    return parse_json(wire_json, 0)


def outcome(encode: Any, event: str, data: Any) -> tuple[str, str]:
    try:
        return ("ok", encode(event, data))
    except LocalProtocolError as exc:
        return ("error", str(exc))


def assert_same(event: str, data: Any) -> None:
    assert outcome(encode_relayed_event, event, data) == outcome(encode_event, event, data)


def relayed_body(value: Any) -> dict[str, Any]:
    return {"type": "offer", "value": value, "from": "c" * 20, "agentId": "agent", "roomId": "room-1"}


def test_a_realistic_offer_is_written_by_orjson_with_the_stdlib_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: a relayed offer; the stdlib path made unusable to see which path runs
    body = relayed_body(decoded(json.dumps({"type": "offer", "sdp": SDP})))
    expected = encode_event("offer", body)
    monkeypatch.setattr(socketio, "encode_event", None)
    # when
    text = encode_relayed_event("offer", body)
    # then
    assert text == expected
    assert text.startswith('2["offer",{"type":"offer","value":{"type":"offer","sdp":"v=0\\r\\no=-')


def test_an_offset_is_written_last_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: connection state recovery's offset on a relayed offer, and on a float payload
    body = relayed_body(decoded(json.dumps({"type": "offer", "sdp": SDP})))
    with_float = relayed_body(decoded('{"x": 1.5}'))
    expected = encode_event("offer", body, offset="abcdefgh1f")
    # when / then: orjson's bytes equal the stdlib's; the stdlib fallback carries it too
    assert encode_relayed_event("offer", with_float, offset="o-1") == encode_event("offer", with_float, offset="o-1")
    assert encode_relayed_event("offer", with_float, offset="o-1").endswith(',"o-1"]')
    monkeypatch.setattr(socketio, "encode_event", None)
    assert encode_relayed_event("offer", body, offset="abcdefgh1f") == expected
    assert expected.endswith('},"abcdefgh1f"]')


def test_every_character_is_escaped_as_the_stdlib_escapes_it() -> None:
    # given: every code point, lone surrogates included (the stdlib path writes them as U+FFFD)
    chars = [chr(c) for c in range(0x110000) if c % 7 == 0 or c < 0x3000]
    # when / then: in chunks, so a mismatch names its range
    for start in range(0, len(chars), 512):
        assert_same("offer", relayed_body("".join(chars[start : start + 512])))


@pytest.mark.parametrize(
    "wire",
    [
        "0",
        "-0",
        str(2**63 - 1),
        str(2**63),
        str(2**64 - 1),
        str(2**64),
        str(-(2**63)),
        str(-(2**63) - 1),
        "1" + "0" * 40,
        "1.5",
        "-0.0",
        "1e16",
        "1E+2",
        "1e-7",
        "0.1",
        "1e999",
        "-1e999",
        "123456789012345678901234567890.5",
        '"\\ud800"',
        '"\\udfff\\ud800x"',
        '"\\ud83d\\ude00"',
        '"\\u2028\\u2029\\u0000\\u001f\\u007f"',
        "[true,false,null,{}]",
        '{"a":{"b":[1,2.5,"c"]}}',
        '{"k":1,"k":2}',
        "9" * 5000,
        '{"n":[-' + "1" * 4400 + ",1.5]}",
    ],
)
def test_decoded_numbers_strings_and_containers_encode_identically(wire: str) -> None:
    # given
    value = decoded(wire)
    # then
    assert_same("candidate", relayed_body(value))


@pytest.mark.parametrize("depth", [100, 254, 255, 300, 900, 5000])
def test_deep_nesting_encodes_or_fails_identically(depth: int) -> None:
    # given: a nested list built directly (the decoder's own depth limit aside)
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    # then
    assert_same("offer", relayed_body(value))


def test_bytes_non_str_keys_and_reserved_names_behave_as_encode_event() -> None:
    assert_same("offer", relayed_body(b"\x00binary"))
    assert_same("offer", relayed_body({1: "one", None: "none", 2.5: "t"}))
    assert_same("offer", relayed_body(JsonFloat("nan")))
    assert_same("connect", relayed_body("x"))
    assert_same("disconnect", relayed_body("x"))


def test_integers_past_the_int_str_limit_decode_as_json_floats() -> None:
    # when: the lenient decoder reads an integer of 5,000 digits (JSON.parse: Infinity)
    value = decoded("9" * 5000)
    # then: a JsonFloat, which the orjson path hands to the stdlib (which refuses Infinity)
    assert type(value) is JsonFloat
    with pytest.raises(LocalProtocolError):
        encode_relayed_event("offer", relayed_body(value))


def test_decoded_floats_are_json_floats_and_take_the_stdlib_path() -> None:
    # when
    value = decoded('{"x":1e16,"y":[0.5]}')
    # then
    assert type(value["x"]) is JsonFloat and type(value["y"][0]) is JsonFloat
    assert encode_relayed_event("offer", value) == '2["offer",{"x":1e+16,"y":[0.5]}]'


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_any_decoded_json_value_encodes_identically(value: Any) -> None:
    # given: a JSON value as a peer sends it, decoded by the protocol's decoder
    wire = json.dumps(value, ensure_ascii=False)
    # then
    assert_same("answer", relayed_body(decoded(wire)))
