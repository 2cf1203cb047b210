"""The webhook outbox (``rooms.webhooks``) and ``GET /api/events`` (SPEC section 10).

Database tier, no event loop: events written in the transaction of their change, ``seq``
per room, claims (one per room, leases), the retry schedule (time passed in), and the
staff-only reconciliation endpoint through the real DRF stack and real JWTs.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.test import APIClient

from rooms import services, webhooks
from rooms.models import Room, WebhookEvent
from rooms.tests.fixtures import ANY_ISO_UTC, ANY_TEXT, Matches

pytestmark = pytest.mark.django_db

WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ANY_EVENT_ID = Matches(re.compile(r"^evt_[A-Za-z0-9_-]{22}$"))


@pytest.fixture
def webhooks_on(settings: Any) -> None:
    """``WEBHOOK_URL`` and ``WEBHOOK_SECRET`` set (nothing listens: these tests never deliver)."""
    settings.SIGNALING = dataclasses.replace(
        settings.SIGNALING, webhook_url="http://127.0.0.1:9/hooks", webhook_secret=WEBHOOK_SECRET
    )


def events_of(room_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    events = WebhookEvent.objects.filter(room_id=room_id).order_by(F("seq").asc(nulls_last=True), "id")
    return [(e.seq, e.type, e.data) for e in events]


def close_and_number(room_id: str, reason: str = "deleted", seq: int = 0) -> None:
    """What a close does: the row and its unnumbered room.closed, then the numbering after presence."""
    services.close_room_row(room_id, reason)
    webhooks.number_room_closed(room_id, seq)


def pending(room_id: str, event_type: str, seq: int, count: int, **fields: Any) -> webhooks.Pending:
    return webhooks.Pending(room_id, webhooks.EventType(event_type), seq, count, timezone.now(), fields)


def test_no_event_is_recorded_while_webhooks_are_off(make_room: Callable[..., Room]) -> None:
    room = make_room()
    services.close_room_row(room.id, "deleted")
    assert WebhookEvent.objects.count() == 0


def test_room_created_and_closed_are_written_with_their_change(
    webhooks_on: None, make_room: Callable[..., Room]
) -> None:
    # when
    room = make_room(name="Standup")
    services.close_room_row(room.id, "deleted")
    services.close_room_row(room.id, "expired")  # already closed: no second event
    # then room.closed waits unnumbered (presence gives it the last number) and is not due
    assert [(seq, t) for seq, t, _ in events_of(room.id)] == [(1, "room.created"), (None, "room.closed")]
    webhooks.claim_due(10, now=timezone.now() + timedelta(seconds=1))  # leases room.created only
    assert WebhookEvent.objects.filter(lease_until__isnull=False).get().type == "room.created"
    # when it is numbered (no number from presence: the room's next)
    webhooks.number_room_closed(room.id)
    # then
    assert events_of(room.id) == [
        (
            1,
            "room.created",
            {
                "roomId": room.id,
                "seq": 1,
                "participantCount": 0,
                "name": "Standup",
                "type": "voice",
                "createdBy": "agent-fawzi",
            },
        ),
        (2, "room.closed", {"roomId": room.id, "seq": 2, "participantCount": 0, "reason": "deleted"}),
    ]
    assert list(WebhookEvent.objects.values_list("state", "attempts")) == [("pending", 0), ("pending", 0)]


def test_a_rolled_back_close_leaves_no_event(webhooks_on: None, make_room: Callable[..., Room]) -> None:
    room = make_room()
    # when the transaction that closes the row fails after the close
    with pytest.raises(RuntimeError), transaction.atomic():
        services.close_room_row(room.id, "deleted")
        raise RuntimeError("the caller's transaction fails")
    # then neither the close nor its event happened
    assert Room.objects.get(pk=room.id).closed_at is None
    assert [t for _, t, _ in events_of(room.id)] == ["room.created"]


def test_numbered_participant_events_keep_their_numbers_whatever_order_they_are_written_in(
    webhooks_on: None, make_room: Callable[..., Room]
) -> None:
    room = make_room()
    a, b = {"clientId": "c1", "agentId": "agent-a"}, {"clientId": "c2", "agentId": "agent-b"}
    # when two instances' batches reach the database out of order
    assert (
        webhooks.record_batch(
            [
                pending(room.id, "participant.kicked", 5, 1, **b, banSeconds=600),
                pending(room.id, "participant.left", 6, 1, **b, reason="kicked"),
                pending(room.id, "participant.left", 7, 0, **a, reason="left"),
            ]
        )
        == 0
    )
    assert (
        webhooks.record_batch(
            [
                pending(room.id, "room.started", 2, 1),
                pending(room.id, "participant.joined", 3, 1, **a),
                pending(room.id, "participant.joined", 4, 2, **b),
            ]
        )
        == 0
    )
    # then
    base = {"roomId": room.id}
    assert events_of(room.id)[1:] == [
        (2, "room.started", {**base, "seq": 2, "participantCount": 1}),
        (3, "participant.joined", {**base, "seq": 3, "participantCount": 1, "clientId": "c1", "agentId": "agent-a"}),
        (4, "participant.joined", {**base, "seq": 4, "participantCount": 2, "clientId": "c2", "agentId": "agent-b"}),
        (
            5,
            "participant.kicked",
            {**base, "seq": 5, "participantCount": 1, "clientId": "c2", "agentId": "agent-b", "banSeconds": 600},
        ),
        (
            6,
            "participant.left",
            {**base, "seq": 6, "participantCount": 1, "clientId": "c2", "agentId": "agent-b", "reason": "kicked"},
        ),
        (
            7,
            "participant.left",
            {**base, "seq": 7, "participantCount": 0, "clientId": "c1", "agentId": "agent-a", "reason": "left"},
        ),
    ]

    # and the room's counter is the highest number written: an unnumbered event comes next
    assert Room.objects.get(pk=room.id).webhook_seq == 7
    close_and_number(room.id)
    assert events_of(room.id)[-1][:2] == (8, "room.closed")


def test_a_number_taken_already_drops_that_event_alone(webhooks_on: None, make_room: Callable[..., Room]) -> None:
    room = make_room()
    # when a batch holds a number the room has (seq 1 is room.created)
    dropped = webhooks.record_batch(
        [
            pending(room.id, "room.started", 1, 1),
            pending(room.id, "participant.joined", 2, 1, clientId="c", agentId="a"),
        ]
    )
    # then
    assert dropped == 1
    assert [(seq, t) for seq, t, _ in events_of(room.id)] == [(1, "room.created"), (2, "participant.joined")]


def test_an_event_for_an_unknown_room_is_not_written(webhooks_on: None) -> None:
    webhooks.record_batch([pending("r_nope", "participant.left", 3, 0, clientId="c1", agentId="a", reason="left")])
    assert WebhookEvent.objects.count() == 0


def test_the_body_is_type_timestamp_and_data(webhooks_on: None, make_room: Callable[..., Room]) -> None:
    room = make_room()
    event = WebhookEvent.objects.get(room=room)
    assert json.loads(webhooks.body_of(event)) == {
        "type": "room.created",
        "timestamp": webhooks.iso_utc(room.created_at),
        "data": event.data,
    }


def test_a_claim_takes_only_the_oldest_pending_event_of_each_room(
    webhooks_on: None, make_room: Callable[..., Room]
) -> None:
    first, _second = make_room(), make_room()
    close_and_number(first.id)
    now = timezone.now() + timedelta(seconds=1)
    # when
    claimed = webhooks.claim_due(10, now=now)
    # then one per room, and a second claim (another instance) gets nothing while leased
    heads = WebhookEvent.objects.filter(seq=1)
    assert sorted(c.webhook_id for c in claimed) == sorted(heads.values_list("webhook_id", flat=True))
    assert webhooks.claim_due(10, now=now) == []
    # when the first room's head is delivered, its next event is due
    head = next(c for c in claimed if c.webhook_id == heads.get(room=first).webhook_id)
    assert webhooks.record_attempt(head, is_delivered=True, now=now) == "delivered"
    [following] = webhooks.claim_due(10, now=now)
    assert following.webhook_id == WebhookEvent.objects.get(room=first, seq=2).webhook_id


def test_a_failed_attempt_is_retried_on_the_spec_schedule_then_marked_failed(
    webhooks_on: None, make_room: Callable[..., Room]
) -> None:
    room = make_room()
    close_and_number(room.id)
    now = timezone.now() + timedelta(seconds=1)
    webhook_id = WebhookEvent.objects.get(room=room, seq=1).webhook_id
    waits = []
    for _attempt in range(len(webhooks.RETRY_DELAYS_S) + 1):
        if waits:  # nothing is due before the retry time
            assert webhooks.claim_due(10, now=now - timedelta(milliseconds=1)) == []
        [claimed] = webhooks.claim_due(10, now=now)
        assert claimed.webhook_id == webhook_id  # the same webhook-id on every attempt
        state = webhooks.record_attempt(claimed, is_delivered=False, error="HTTP 500", now=now)
        event = WebhookEvent.objects.get(webhook_id=webhook_id)
        if state == "failed":
            break
        waits.append((event.next_attempt_at - now).total_seconds())
        now = event.next_attempt_at
    # then
    assert waits == [1, 5, 30, 120, 600, 3600, 21600]
    event = WebhookEvent.objects.get(webhook_id=webhook_id)
    assert (event.state, event.attempts, event.last_error) == ("failed", 8, "HTTP 500")
    # the failed event no longer holds the room's next one back
    [following] = webhooks.claim_due(10, now=now)
    assert following.webhook_id == WebhookEvent.objects.get(room=room, seq=2).webhook_id


def test_an_outcome_after_the_lease_ran_out_and_another_claim_is_not_written(
    webhooks_on: None, make_room: Callable[..., Room]
) -> None:
    room = make_room()
    now = timezone.now() + timedelta(seconds=1)
    [stale] = webhooks.claim_due(10, now=now)
    later = now + timedelta(seconds=webhooks.LEASE_S + 1)
    [fresh] = webhooks.claim_due(10, now=later)  # the first instance's lease ran out
    # when the first instance reports late
    assert webhooks.record_attempt(stale, is_delivered=False, error="HTTP 500", now=later) == ""
    # then only the current holder's outcome counts
    assert webhooks.record_attempt(fresh, is_delivered=True, now=later) == "delivered"
    assert WebhookEvent.objects.filter(room=room).values_list("state", "attempts").get() == ("delivered", 1)


@pytest.mark.parametrize(
    ("_case", "may_skip_gaps", "is_claimed"), [("gaps_skipped", True, True), ("after_an_outage", False, False)]
)
def test_a_missing_predecessor_holds_its_room_for_gap_s_then_is_skipped(
    webhooks_on: None, make_room: Callable[..., Room], _case: str, may_skip_gaps: bool, is_claimed: bool
) -> None:
    # given room.created delivered, and seq 3 written while seq 2 (another instance's) is not
    room = make_room()
    now = timezone.now() + timedelta(seconds=1)
    [created] = webhooks.claim_due(10, now=now)
    webhooks.record_attempt(created, is_delivered=True, now=now)
    webhooks.record_batch([pending(room.id, "participant.joined", 3, 2, clientId="c2", agentId="b")])
    # then it waits while its predecessor may still come
    assert webhooks.claim_due(10, now=now + timedelta(seconds=webhooks.GAP_S - 1)) == []
    # and after GAP_S it is delivered without it (not right after an outage)
    later = now + timedelta(seconds=webhooks.GAP_S + 1)
    claimed = webhooks.claim_due(10, now=later, may_skip_gaps=may_skip_gaps)
    assert [c.webhook_id for c in claimed] == (
        [WebhookEvent.objects.get(room=room, seq=3).webhook_id] if is_claimed else []
    )


def test_a_room_closed_whose_numbering_was_lost_is_numbered_after_gap_s(
    webhooks_on: None, make_room: Callable[..., Room]
) -> None:
    room = make_room()
    services.close_room_row(room.id, "deleted")  # and the instance died before numbering it
    assert webhooks.number_stale_closes(timezone.now() + timedelta(seconds=webhooks.GAP_S - 1)) == 0
    later = timezone.now() + timedelta(seconds=webhooks.GAP_S + 1)
    assert webhooks.number_stale_closes(later) == 1
    [created] = webhooks.claim_due(10, now=later)
    webhooks.record_attempt(created, is_delivered=True, now=later)
    [closed] = webhooks.claim_due(10, now=later)
    assert json.loads(closed.body)["data"] == {"roomId": room.id, "seq": 2, "participantCount": 0, "reason": "deleted"}


def test_released_leases_are_due_again_at_once(webhooks_on: None, make_room: Callable[..., Room]) -> None:
    # given an instance holding two leases (it stops cleanly), one of which ran out and was
    # taken over by another instance meanwhile
    first, second = make_room(), make_room()
    now = timezone.now() + timedelta(seconds=1)
    held = webhooks.claim_due(10, now=now)
    assert len(held) == 2
    other_lease = now + timedelta(seconds=2 * webhooks.LEASE_S)
    WebhookEvent.objects.filter(room=second).update(lease_until=other_lease)
    # when the first instance releases what it held
    assert webhooks.release_leases(held) == 1
    # then its event is due for anyone at once; the one taken over stays with its new holder
    [again] = webhooks.claim_due(10, now=now)
    assert again.webhook_id == WebhookEvent.objects.get(room=first).webhook_id
    assert WebhookEvent.objects.get(room=second).lease_until == other_lease


# --- GET /api/events -------------------------------------------------------------------


def event_json(event: WebhookEvent) -> dict[str, Any]:
    return {
        "id": event.webhook_id,
        "type": event.type,
        "timestamp": ANY_ISO_UTC,
        "roomId": event.room_id,
        "seq": event.seq,
        "data": event.data,
        "state": event.state,
        "attempts": event.attempts,
    }


@pytest.fixture
def three_events(webhooks_on: None, make_room: Callable[..., Room]) -> list[WebhookEvent]:
    first, _second = make_room(), make_room()
    services.close_room_row(first.id, "expired")
    return list(WebhookEvent.objects.order_by("id"))


def test_events_are_listed_oldest_first_for_a_staff_token(
    three_events: list[WebhookEvent], client_as: Callable[..., APIClient]
) -> None:
    response = client_as("agent-ops", is_staff=True).get("/api/events")
    assert response.status_code == 200
    assert response.json() == {
        "count": 3,
        "next": None,
        "previous": None,
        "results": [event_json(e) for e in three_events],
    }
    assert response.json()["results"][0]["id"] == ANY_EVENT_ID


def test_events_after_an_id_and_of_one_room(
    three_events: list[WebhookEvent], client_as: Callable[..., APIClient]
) -> None:
    client = client_as("agent-ops", is_staff=True)
    first, second, third = three_events
    after = client.get("/api/events", {"after": first.webhook_id}).json()["results"]
    of_room = client.get("/api/events", {"roomId": first.room_id}).json()["results"]
    both = client.get("/api/events", {"roomId": first.room_id, "after": first.webhook_id}).json()["results"]
    assert after == [event_json(second), event_json(third)]
    assert of_room == [event_json(first), event_json(third)]
    assert both == [event_json(third)]


def test_events_for_a_django_staff_user(three_events: list[WebhookEvent]) -> None:
    client = APIClient()
    client.force_login(User.objects.create_user("ops", password="pw-long-enough", is_staff=True))
    assert client.get("/api/events").json()["count"] == 3


@pytest.mark.parametrize(
    ("_case", "extra", "status", "code"),
    [
        ("no_token", None, 401, "missing_token"),
        ("agent_token_not_staff", {}, 403, "forbidden"),
    ],
)
def test_events_are_staff_only(
    three_events: list[WebhookEvent],
    client_as: Callable[..., APIClient],
    _case: str,
    extra: dict[str, Any] | None,
    status: int,
    code: str,
) -> None:
    client = APIClient() if extra is None else client_as("agent-fawzi", **extra)
    response = client.get("/api/events")
    assert (response.status_code, response.json()) == (status, {"detail": ANY_TEXT, "code": code})


def test_an_unknown_after_id_is_a_clean_400(
    three_events: list[WebhookEvent], client_as: Callable[..., APIClient]
) -> None:
    response = client_as("agent-ops", is_staff=True).get("/api/events", {"after": "evt_nope"})
    assert response.status_code == 400
    assert response.json() == {"detail": ANY_TEXT, "code": "invalid", "errors": {"after": ["No event has this id."]}}
