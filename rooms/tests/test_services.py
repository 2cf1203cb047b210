"""rooms.services: room creation and the close-once rule (SPEC sections 2 and 4)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from rooms import services
from rooms.enums import CloseReason
from rooms.models import Room

pytestmark = pytest.mark.django_db


def test_create_room_arms_the_empty_room_expiry(settings: Any) -> None:
    settings.SIGNALING = dataclasses.replace(settings.SIGNALING, room_timeout_ms=90_000)
    room = services.create_room(name="a", room_type="video", created_by="agent-x")
    assert room.expires_at == room.created_at + timedelta(seconds=90)
    assert (room.type, room.max_participants, room.is_closed) == ("video", 10, False)


def test_close_room_row_closes_once(make_room: Callable[..., Room]) -> None:
    # given
    room = make_room()
    # when
    first = services.close_room_row(room.id, CloseReason.MAX_DURATION)
    second = services.close_room_row(room.id, CloseReason.DELETED)
    # then
    assert first is not None
    assert (first.id, first.is_closed, first.close_reason) == (
        room.id,
        True,
        "max_duration",
    )
    assert second is None
    room.refresh_from_db()
    assert (room.close_reason, room.closed_at) == ("max_duration", first.closed_at)


def test_close_unknown_room_raises_does_not_exist() -> None:
    with pytest.raises(Room.DoesNotExist):
        services.close_room_row("r_nope", CloseReason.DELETED)


def test_close_room_row_rejects_an_unknown_reason(make_room: Callable[..., Room]) -> None:
    room = make_room()
    with pytest.raises(ValueError):
        services.close_room_row(room.id, "bored")
    room.refresh_from_db()
    assert room.is_closed is False


def test_effective_cap_never_exceeds_the_global_cap(make_room: Callable[..., Room], settings: Any) -> None:
    room = make_room(max_participants=8)
    assert services.effective_max_participants(room) == 8
    settings.SIGNALING = dataclasses.replace(settings.SIGNALING, max_participants=5)
    assert services.effective_max_participants(room) == 5


def test_close_reasons_and_room_types_are_the_spec_strings() -> None:
    assert [r.value for r in CloseReason] == ["deleted", "max_duration", "expired"]
    assert [c for c, _label in Room._meta.get_field("type").choices] == [
        "voice",
        "video",
    ]


@pytest.mark.django_db(transaction=True)
def test_concurrent_closes_close_exactly_once(db: None) -> None:
    # given
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection, connections

    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises writers; the race needs a server database")
    room = services.create_room(name="a", room_type="voice", created_by="agent-x")

    def close(reason: CloseReason) -> bool:
        try:
            return services.close_room_row(room.id, reason) is not None
        finally:
            connections.close_all()

    # when
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(close, [CloseReason.DELETED] * 8))
    # then
    assert results.count(True) == 1
    assert Room.objects.get(pk=room.id).close_reason == "deleted"
