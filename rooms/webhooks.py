"""The webhook outbox: events written with the change they describe, claimed for delivery.

Owns every write to ``WebhookEvent`` rows and the room's event counter (``Room.webhook_seq``),
SPEC section 10. Events are recorded only when ``WEBHOOK_URL`` is set. Each record runs in
``transaction.atomic()``: called inside the transaction of the change (``room.created`` in
``rooms.services.create_room``, ``room.closed`` in ``close_room_row``) it commits or rolls back
with it. ``seq`` is taken under the room row's lock (``UPDATE ... SET webhook_seq =
webhook_seq + 1``), so a room's events count 1, 2, 3 ... whichever instance writes them.

Claiming (:func:`claim_due`) hands each due event to exactly one instance at a time:

- PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` picks due, unleased events, then a lease
  (``lease_until``) is written in the same transaction; other instances skip locked and
  leased rows.
- SQLite: ``FOR UPDATE`` does not exist, but every transaction here is ``IMMEDIATE`` (see
  settings): claims of several processes on one file run one after the other, and the lease
  makes the later claimer skip what the earlier took.

Only the oldest pending event of a room is ever due: a room's later event waits until its
earlier one is delivered or failed. A lease that runs out (its instance died mid-delivery)
makes the event due again: delivery is at least once. Never imports ``signaling``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from rooms.models import Room, WebhookEvent, WebhookState

# SPEC section 10: retried after about 1 s, 5 s, 30 s, 2 min, 10 min, 1 h and 6 h, then failed.
RETRY_DELAYS_S = (1, 5, 30, 120, 600, 3600, 21600)
# Longer than a delivery can take (10 s timeout plus database time): an unexpired lease means
# an instance is delivering the event right now.
LEASE_S = 60
LAST_ERROR_MAX_LENGTH = 200


class EventType(StrEnum):
    """Webhook event types (SPEC section 10)."""

    ROOM_CREATED = "room.created"
    ROOM_STARTED = "room.started"
    ROOM_CLOSED = "room.closed"
    PARTICIPANT_JOINED = "participant.joined"
    PARTICIPANT_LEFT = "participant.left"
    PARTICIPANT_KICKED = "participant.kicked"


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    """An event this instance holds the lease of: deliver it, then :func:`record_attempt`."""

    pk: int
    webhook_id: str
    body: str
    lease_until: datetime


def is_enabled() -> bool:
    """True when webhooks are configured (``WEBHOOK_URL``): only then are events recorded."""
    return bool(settings.SIGNALING.webhook_url)


def iso_utc(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and Z, as JavaScript's ``toISOString()`` writes it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def body_of(event: WebhookEvent) -> str:
    """The POST body: ``{"type", "timestamp", "data"}`` (the same bytes on every attempt)."""
    return json.dumps(
        {"type": event.type, "timestamp": iso_utc(event.occurred_at), "data": event.data},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def record(
    room_id: str,
    event_type: EventType,
    participant_count: int,
    *,
    occurred_at: datetime | None = None,
    **fields: Any,
) -> WebhookEvent | None:
    """Append one event to the room's outbox with the room's next ``seq``.

    Args:
        room_id: the room.
        event_type: what happened.
        participant_count: the room's participants once the change is done.
        occurred_at: when it happened (default: now).
        fields: more ``data`` members (camelCase wire names).

    Returns:
        The event; None when webhooks are off or no room has that id.
    """
    if not is_enabled():
        return None
    now = timezone.now()
    with transaction.atomic():
        if not Room.objects.filter(pk=room_id).update(webhook_seq=F("webhook_seq") + 1):
            return None
        seq = Room.objects.filter(pk=room_id).values_list("webhook_seq", flat=True).get()
        data = {"roomId": room_id, "seq": seq, "participantCount": participant_count, **fields}
        return WebhookEvent.objects.create(
            room_id=room_id,
            seq=seq,
            type=EventType(event_type).value,
            occurred_at=occurred_at or now,
            data=data,
            next_attempt_at=now,
        )


def record_room_created(room: Room) -> None:
    """``room.created``: call inside the transaction that inserts the room."""
    record(
        room.id,
        EventType.ROOM_CREATED,
        0,
        occurred_at=room.created_at,
        name=room.name,
        type=room.type,
        createdBy=room.created_by,
    )


def record_room_closed(room_id: str, reason: str) -> None:
    """``room.closed`` with ``reason``: call inside the transaction that closes the row.

    ``participantCount`` is 0: a closed room holds nobody (its members are put out with it).
    """
    record(room_id, EventType.ROOM_CLOSED, 0, reason=reason)


def record_participant_joined(
    room_id: str, client_id: str, agent_id: str, participant_count: int, occurred_at: datetime
) -> None:
    """``participant.joined``, preceded by ``room.started`` when this is the room's first join."""
    if not is_enabled():
        return
    with transaction.atomic():
        # The room row's lock (SQLite: the database's) makes "first" one answer cluster-wide.
        if not Room.objects.select_for_update().filter(pk=room_id).exists():
            return
        if not WebhookEvent.objects.filter(room_id=room_id, type=EventType.ROOM_STARTED).exists():
            record(room_id, EventType.ROOM_STARTED, participant_count, occurred_at=occurred_at)
        record(
            room_id,
            EventType.PARTICIPANT_JOINED,
            participant_count,
            occurred_at=occurred_at,
            clientId=client_id,
            agentId=agent_id,
        )


def record_participant_left(
    room_id: str, client_id: str, agent_id: str, reason: str, participant_count: int, occurred_at: datetime
) -> None:
    """``participant.left`` with ``reason`` (``left``, ``disconnected``, ``timeout``, ``kicked``, ...)."""
    record(
        room_id,
        EventType.PARTICIPANT_LEFT,
        participant_count,
        occurred_at=occurred_at,
        clientId=client_id,
        agentId=agent_id,
        reason=reason,
    )


def record_participant_kicked(
    room_id: str,
    client_id: str,
    agent_id: str,
    ban_seconds: int | None,
    participant_count: int,
    occurred_at: datetime | None = None,
) -> None:
    """``participant.kicked`` (SPEC section 10): record it before the kick's ``participant.left``.

    Args:
        room_id: the room.
        client_id: the kicked socket.
        agent_id: its agent.
        ban_seconds: how long the agent is banned from the room; None: no ban.
        participant_count: the room's participants once the kicked one is out.
        occurred_at: when (default: now).
    """
    record(
        room_id,
        EventType.PARTICIPANT_KICKED,
        participant_count,
        occurred_at=occurred_at,
        clientId=client_id,
        agentId=agent_id,
        banSeconds=ban_seconds,
    )


def claim_due(limit: int, now: datetime | None = None) -> list[ClaimedEvent]:
    """Lease up to ``limit`` due events, at most one per room (its oldest pending), oldest first."""
    now = now or timezone.now()
    earlier_pending = WebhookEvent.objects.filter(
        room_id=OuterRef("room_id"), state=WebhookState.PENDING, seq__lt=OuterRef("seq")
    )
    lease_until = now + timedelta(seconds=LEASE_S)
    with transaction.atomic():
        due = (
            WebhookEvent.objects.filter(state=WebhookState.PENDING, next_attempt_at__lte=now)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .filter(~Exists(earlier_pending))
            .order_by("id")
            .select_for_update(skip_locked=True, of=("self",))[:limit]
        )
        events = list(due)
        WebhookEvent.objects.filter(pk__in=[event.pk for event in events]).update(lease_until=lease_until)
    return [ClaimedEvent(event.pk, event.webhook_id, body_of(event), lease_until) for event in events]


def record_attempt(claimed: ClaimedEvent, *, is_delivered: bool, error: str = "", now: datetime | None = None) -> str:
    """Write the outcome of one delivery attempt; a failure is retried on the SPEC schedule.

    Returns:
        The event's state afterwards, or ``""`` when the lease was lost (the event was
        claimed again after this instance's lease ran out): nothing is written then.
    """
    now = now or timezone.now()
    with transaction.atomic():
        event = (
            WebhookEvent.objects.select_for_update()
            .filter(pk=claimed.pk, lease_until=claimed.lease_until, state=WebhookState.PENDING)
            .first()
        )
        if event is None:
            return ""
        event.attempts += 1
        event.lease_until = None
        if is_delivered:
            event.state, event.delivered_at, event.last_error = WebhookState.DELIVERED, now, ""
        else:
            event.last_error = error[:LAST_ERROR_MAX_LENGTH]
            if event.attempts > len(RETRY_DELAYS_S):
                event.state = WebhookState.FAILED
            else:
                event.next_attempt_at = now + timedelta(seconds=RETRY_DELAYS_S[event.attempts - 1])
        event.save(update_fields=["attempts", "lease_until", "state", "delivered_at", "last_error", "next_attempt_at"])
        return str(event.state)


def events_after(after_id: int | None = None, room_id: str | None = None) -> QuerySet[WebhookEvent]:
    """Events oldest first, after the event of primary key ``after_id``, of one room if given."""
    events = WebhookEvent.objects.order_by("id")
    if after_id is not None:
        events = events.filter(id__gt=after_id)
    if room_id is not None:
        events = events.filter(room_id=room_id)
    return events
