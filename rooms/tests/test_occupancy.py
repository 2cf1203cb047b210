"""rooms.occupancy: occupancy marks from different instances cannot overtake each other (SPEC 4)."""

from __future__ import annotations

import pytest

from rooms import occupancy, services
from rooms.models import Room

pytestmark = pytest.mark.django_db


def new_room() -> Room:
    return services.create_room(name="a", room_type="voice", created_by="agent-x")


def test_a_late_empty_mark_does_not_overwrite_a_newer_occupied_mark() -> None:
    # given: the room emptied (version 5) and was joined again (version 6); 6 lands first
    room = new_room()
    occupancy.mark_occupied(room.id, 6, None)
    # when: the older "empty" mark arrives
    occupancy.mark_empty(room.id, 5)
    # then: the room is occupied: no expiry
    row = Room.objects.get(pk=room.id)
    assert (row.expires_at, row.occupancy_version) == (None, 6)


def test_a_late_occupied_mark_does_not_cancel_a_newer_empty_mark() -> None:
    # given
    room = new_room()
    occupancy.mark_empty(room.id, 8)
    armed = Room.objects.get(pk=room.id).expires_at
    # when
    occupancy.mark_occupied(room.id, 7, None)
    # then
    row = Room.objects.get(pk=room.id)
    assert (row.expires_at, row.occupancy_version) == (armed, 8)
    assert armed is not None


def test_the_first_join_starts_max_duration_whatever_the_order_of_marks() -> None:
    # given: a newer empty mark landed first
    room = new_room()
    occupancy.mark_empty(room.id, 3)
    # when: the first join's (older) occupied mark lands
    occupancy.mark_occupied(room.id, 1, 30)
    # then: maxDuration runs, and the newer empty mark's expiry stands
    row = Room.objects.get(pk=room.id)
    assert row.first_joined_at is not None and row.closes_at is not None
    assert row.expires_at is not None and row.occupancy_version == 3


def test_a_later_occupied_mark_cancels_the_expiry_and_keeps_the_first_join() -> None:
    # given: the first join (1) started maxDuration; the room emptied (2)
    room = new_room()
    occupancy.mark_occupied(room.id, 1, 30)
    first = Room.objects.get(pk=room.id)
    occupancy.mark_empty(room.id, 2)
    # when: someone joins again (3)
    occupancy.mark_occupied(room.id, 3, 30)
    # then: no expiry; maxDuration still counts from the first join
    row = Room.objects.get(pk=room.id)
    assert (row.expires_at, row.occupancy_version) == (None, 3)
    assert (row.first_joined_at, row.closes_at) == (first.first_joined_at, first.closes_at)
    assert first.closes_at is not None and first.closes_at > first.first_joined_at


def test_an_expiry_that_found_the_room_occupied_yields_to_a_newer_leave() -> None:
    # given: the sweeper saw the room occupied at version 4; a leave (5) emptied it since
    room = new_room()
    occupancy.mark_empty(room.id, 5)
    # when
    occupancy.cancel_expiry(room.id, 4)
    # then: the newer empty mark stands
    assert Room.objects.get(pk=room.id).expires_at is not None
    # and at the same version the expiry is cancelled
    occupancy.cancel_expiry(room.id, 5)
    assert Room.objects.get(pk=room.id).expires_at is None
