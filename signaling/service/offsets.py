"""Offsets of server-to-client events (connection state recovery, SPEC section 7).

With ``RECOVERY_WINDOW`` > 0 every EVENT the server emits without an ack id carries one
more, last, string argument: its offset. An offset names one emitted packet, the same for
every recipient of a broadcast: it is added where the packet is encoded, in the same JSON
encode (:func:`encode`), never per recipient. With the window at 0, :func:`encode` is
``encode_event`` and nothing else.

An offset is this process's tag (8 random characters) and a counter in hex: offsets from
one process increase, so the events one sender's instance emitted can be put back in their
order when they reached a held session by different paths (:func:`in_origin_order`).
"""

from __future__ import annotations

import itertools
from typing import Any

from django.conf import settings

from signaling.consumers.connection import new_sid
from signaling.protocol import encode_event, encode_relayed_event

TAG_CHARS = 8
_TAG = new_sid()[:TAG_CHARS]
_counter = itertools.count(1)
_OFFSET_TAIL = '"]'  # an event whose last argument is the offset string ends so


def _next_offset() -> str:
    return f"{_TAG}{next(_counter):x}"


def encode(event: str, data: Any) -> str:
    """``encode_event(event, data)``, with the next offset as the last argument when
    recovery is on."""
    if settings.SIGNALING.recovery_window_ms:
        return encode_event(event, data, offset=_next_offset())
    return encode_event(event, data)


def encode_relayed(event: str, data: dict[str, Any]) -> str:
    """:func:`encode` for a relayed peer payload (``encode_relayed_event``: orjson where it is
    byte-identical to the stdlib encoder)."""
    if settings.SIGNALING.recovery_window_ms:
        return encode_relayed_event(event, data, offset=_next_offset())
    return encode_relayed_event(event, data)


def offset_of(text: str) -> str | None:
    """The offset of an encoded event (``2["name",{...},"<offset>"]``); None for anything
    else (an ack, an event without offset)."""
    if not text.startswith("2[") or not text.endswith(_OFFSET_TAIL):
        return None
    start = text.rfind(',"', 0, len(text) - 2)
    return None if start < 0 else text[start + 2 : -2]


def _origin_key(offset: str) -> tuple[str, int] | None:
    tag, counter = offset[:TAG_CHARS], offset[TAG_CHARS:]
    try:
        return tag, int(counter, 16)
    except ValueError:
        return None


def in_origin_order(texts: list[str]) -> list[str]:
    """The events in their kept order, except that each origin's events are put back in the
    order that origin emitted them (they may reach a held session by two paths, e.g. from
    the sender's instance and from the instance that lost the socket)."""
    slots: dict[str, list[int]] = {}
    keys: list[tuple[str, int] | None] = []
    for index, text in enumerate(texts):
        offset = offset_of(text)
        key = _origin_key(offset) if offset is not None else None
        keys.append(key)
        if key is not None:
            slots.setdefault(key[0], []).append(index)
    ordered = list(texts)
    for positions in slots.values():
        by_counter = sorted(positions, key=lambda i: keys[i][1])  # type: ignore[index]
        for slot, source in zip(positions, by_counter, strict=True):
            ordered[slot] = texts[source]
    return ordered
