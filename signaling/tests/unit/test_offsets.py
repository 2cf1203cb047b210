"""Event offsets (connection state recovery, SPEC section 7): encoding, parsing, origin order."""

from __future__ import annotations

import pytest
from django.test import override_settings

from signaling.protocol import encode_event
from signaling.service import offsets
from signaling_project.config import Config


def test_encode_event_appends_the_offset_as_the_last_argument_in_the_same_encode() -> None:
    assert encode_event("offer", {"sdp": "x"}, offset="abc1") == '2["offer",{"sdp":"x"},"abc1"]'
    assert encode_event("offer", {"sdp": "x"}) == '2["offer",{"sdp":"x"}]'


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ('2["offer",{"sdp":"x"},"abc1"]', "abc1"),
        ('2["offer",{"sdp":"x"}]', None),
        ('31[{"ok":true}]', None),
        ('2["offer",{"sdp":"a,\\"b"},"z9"]', "z9"),
    ],
)
def test_offset_of_reads_the_trailing_offset_only(text: str, offset: str | None) -> None:
    assert offsets.offset_of(text) == offset


def test_encode_adds_increasing_offsets_only_with_recovery_on() -> None:
    with override_settings(SIGNALING=Config(jwt_secret="x" * 40, recovery_window_ms=0)):
        assert offsets.offset_of(offsets.encode("offer", {})) is None
    with override_settings(SIGNALING=Config(jwt_secret="x" * 40, recovery_window_ms=5000)):
        first, second = offsets.encode("offer", {}), offsets.encode("offer", {})
    a, b = offsets.offset_of(first), offsets.offset_of(second)
    assert a is not None and b is not None and a != b
    assert a[: offsets.TAG_CHARS] == b[: offsets.TAG_CHARS]
    assert int(a[offsets.TAG_CHARS :], 16) < int(b[offsets.TAG_CHARS :], 16)


def test_in_origin_order_restores_each_origins_order_in_its_own_slots() -> None:
    # given: origin A's 2 reached the log before its 1 (two paths); B's event between them
    a1, a2 = '2["x",{},"AAAAAAAA1"]', '2["x",{},"AAAAAAAA2"]'
    b7 = '2["x",{},"BBBBBBBB7"]'
    # when
    ordered = offsets.in_origin_order([a2, b7, a1])
    # then
    assert ordered == [a1, b7, a2]
