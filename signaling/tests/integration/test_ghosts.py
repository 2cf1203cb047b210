"""No ghost participants: a socket that ends while its join is under way leaves no trace (issue #11).

A polling client sends `join_room` for a room this instance has not loaded (the join waits
for the database thread) and, meanwhile, an overlapping POST that ends its session. The
room must not keep a participant for the socket that no longer exists: presence is empty,
the cap admits others, and nobody is told of a join.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from signaling.service.instance import get_instance
from signaling.tests.integration.fixtures import POLLING_QUERY, Harness
from signaling.tests.integration.test_transports import polling_session

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_session_ended_during_its_join_leaves_no_participant(signaling: Harness, open_room: Any) -> None:
    # given: a room capped at one, unknown to this instance's policy cache
    room = await open_room(max_participants=1)
    eio_sid, _client_id = await polling_session(signaling, "agent-ghost")
    # when: the join is posted, and an overlapping POST ends the session while it runs
    join = await signaling.request(
        "POST", f"{POLLING_QUERY}&sid={eio_sid}", ('42["join_room",' + json.dumps({"roomId": room.id}) + "]").encode()
    )
    overlap = await (await signaling.request("POST", f"{POLLING_QUERY}&sid={eio_sid}", b"3")).response()
    await join.response()
    # then: the session ended, and presence holds nobody for it
    assert overlap.status == 400
    instance = get_instance()
    assert await instance.presence.members(room.id) == []
    assert (await instance.presence.stats()).participants == 0
    # and the one seat is free for a live socket
    carol = await signaling.in_room("agent-carol", room.id)
    assert carol.client_id
    assert [m.agent_id for m in await instance.presence.members(room.id)] == ["agent-carol"]
