"""The service's writer of participant webhook events (``signaling.service.webhook_outbox``).

Integration tier: the real recorder, ``run_db`` threads and the test database. Events are
queued with the numbers presence reserved and written afterwards; the kick order of SPEC
section 10 (``participant.kicked`` then ``participant.left`` with reason ``kicked``); an
event without a number takes the room's next; nothing written while webhooks are off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async

from rooms.models import WebhookEvent
from signaling.presence import Participant
from signaling.service.webhook_outbox import WebhookRecorder

pytestmark = pytest.mark.django_db(transaction=True)

WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def participant(client_id: str, agent_id: str) -> Participant:
    return Participant(
        client_id=client_id, agent_id=agent_id, joined_at="2026-12-01T00:00:00.000Z", is_muted=False, instance_id="i1"
    )


async def room_events(room_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    rows = WebhookEvent.objects.filter(room_id=room_id).order_by("seq").values_list("seq", "type", "data")
    return await database_sync_to_async(list)(rows)


async def test_a_kick_is_written_as_kicked_then_left_with_reason_kicked(
    fresh_instance: None, signaling_config: Callable[..., None], open_room: Callable[..., Any]
) -> None:
    # given
    signaling_config(webhook_url="http://127.0.0.1:9/hooks", webhook_secret=WEBHOOK_SECRET)
    room = await open_room()
    recorder = WebhookRecorder()
    alice, bob = participant("c-alice", "agent-alice"), participant("c-bob", "agent-bob")
    recorder.joined(room.id, alice, 1, 2, is_room_start=True)
    recorder.joined(room.id, bob, 2, 4, is_room_start=False)
    # when bob is kicked with a ban (presence reserved 5 and 6)
    recorder.kicked(room.id, bob, 600, 1, 5)
    assert len(recorder) == 5  # queued: nothing waited for the database
    await recorder.write_queued()
    # then
    base = {"roomId": room.id}
    assert (await room_events(room.id))[1:] == [
        (2, "room.started", {**base, "seq": 2, "participantCount": 1}),
        (
            3,
            "participant.joined",
            {**base, "seq": 3, "participantCount": 1, "clientId": "c-alice", "agentId": "agent-alice"},
        ),
        (
            4,
            "participant.joined",
            {**base, "seq": 4, "participantCount": 2, "clientId": "c-bob", "agentId": "agent-bob"},
        ),
        (
            5,
            "participant.kicked",
            {**base, "seq": 5, "participantCount": 1, "clientId": "c-bob", "agentId": "agent-bob", "banSeconds": 600},
        ),
        (
            6,
            "participant.left",
            {**base, "seq": 6, "participantCount": 1, "clientId": "c-bob", "agentId": "agent-bob", "reason": "kicked"},
        ),
    ]
    assert len(recorder) == 0  # nothing kept: the database answered


async def test_events_without_a_number_from_presence_take_the_rooms_next(
    fresh_instance: None, signaling_config: Callable[..., None], open_room: Callable[..., Any]
) -> None:
    signaling_config(webhook_url="http://127.0.0.1:9/hooks", webhook_secret=WEBHOOK_SECRET)
    room = await open_room()
    recorder = WebhookRecorder()
    recorder.left(room.id, participant("c-alice", "agent-alice"), 0, "disconnected", 0)
    await recorder.write_queued()
    assert [(seq, kind) for seq, kind, _ in await room_events(room.id)] == [
        (1, "room.created"),
        (2, "participant.left"),
    ]


async def test_nothing_is_written_while_webhooks_are_off(fresh_instance: None, open_room: Callable[..., Any]) -> None:
    room = await open_room()
    recorder = WebhookRecorder()
    recorder.joined(room.id, participant("c-alice", "agent-alice"), 1, 0, is_room_start=True)
    recorder.kicked(room.id, participant("c-alice", "agent-alice"), None, 0, 0)
    assert len(recorder) == 0
    await recorder.write_queued()
    assert await room_events(room.id) == []
