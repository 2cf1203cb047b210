"""The webhook outbox: events written with the change they describe, claimed for delivery.

Owns every write to ``WebhookEvent`` rows and the room's event counter (``Room.webhook_seq``),
SPEC section 10. Events are recorded only when ``WEBHOOK_URL`` is set. Each record runs in
``transaction.atomic()``: called inside the transaction of the change (``room.created`` in
``rooms.services.create_room``, ``room.closed`` in ``close_room_row``) it commits or rolls back
with it.

Numbering (``seq`` counts a room's events 1, 2, 3 ...): ``room.created`` is 1. Participant
events arrive numbered: the signaling service reserves their numbers in presence, atomically
with the membership change (``signaling.presence``), and writes them after the change's ack,
in any order (:func:`record_batch`). ``room.closed`` is written unnumbered in the close's
transaction and numbered right after presence closed the room (:func:`number_room_closed`,
the last number). ``Room.webhook_seq`` keeps the highest number written; an event that comes
without a number (presence lost its counter) takes the next one under the room row's lock.

Claiming (:func:`claim_due`) hands each due event to exactly one instance at a time:

- PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` picks due, unleased events, then a lease
  (``lease_until``) is written in the same transaction; other instances skip locked and
  leased rows.
- SQLite: ``FOR UPDATE`` does not exist, but every transaction here is ``IMMEDIATE`` (see
  settings): claims of several processes on one file run one after the other, and the lease
  makes the later claimer skip what the earlier took.

Only the oldest pending event of a room is ever due, and only once its predecessor
(``seq - 1``) is written: a room's later event waits until its earlier one is delivered or
failed. A predecessor that never comes (its instance died between the change and the write)
holds the room for ``GAP_S``, then is skipped (the receiver sees the gap in ``seq``). An
unnumbered ``room.closed`` older than ``GAP_S`` is numbered by :func:`number_stale_closes`. A lease that runs out (its
instance died mid-delivery) makes the event due again: delivery is at least once. Never
imports ``signaling``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from rooms.models import Room, WebhookEvent, WebhookState

logger = logging.getLogger(__name__)

# SPEC section 10: retried after about 1 s, 5 s, 30 s, 2 min, 10 min, 1 h and 6 h, then failed.
RETRY_DELAYS_S = (1, 5, 30, 120, 600, 3600, 21600)
# Longer than a delivery can take (10 s timeout plus database time): an unexpired lease means
# an instance is delivering the event right now.
LEASE_S = 60
LAST_ERROR_MAX_LENGTH = 200
# How long a missing predecessor (a reserved seq never written) holds a room's later events.
GAP_S = 30


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
    seq: int = 0,
    occurred_at: datetime | None = None,
    **fields: Any,
) -> WebhookEvent | None:
    """Append one event to the room's outbox.

    Args:
        room_id: the room.
        event_type: what happened.
        participant_count: the room's participants once the change is done.
        seq: its number, reserved in presence; 0: the room's next (under the row's lock).
        occurred_at: when it happened (default: now).
        fields: more ``data`` members (camelCase wire names).

    Returns:
        The event; None when webhooks are off or no room has that id.
    """
    if not is_enabled():
        return None
    now = timezone.now()
    with transaction.atomic():
        rooms = Room.objects.filter(pk=room_id)
        if seq:
            if not rooms.update(webhook_seq=Greatest(F("webhook_seq"), Value(seq))):
                return None
        else:
            if not rooms.update(webhook_seq=F("webhook_seq") + 1):
                return None
            seq = rooms.values_list("webhook_seq", flat=True).get()
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
    """``room.closed`` with ``reason``, unnumbered: call inside the transaction that closes the
    row; :func:`number_room_closed` numbers it once presence closed the room.

    ``participantCount`` is 0: a closed room holds nobody (its members are put out with it).
    """
    if not is_enabled():
        return
    now = timezone.now()
    WebhookEvent.objects.create(
        room_id=room_id,
        seq=None,
        type=EventType.ROOM_CLOSED.value,
        occurred_at=now,
        data={"roomId": room_id, "seq": None, "participantCount": 0, "reason": reason},
        next_attempt_at=now,
    )


def number_room_closed(room_id: str, seq: int = 0) -> None:
    """Number the room's unnumbered ``room.closed`` with ``seq`` (reserved in presence after
    it closed the room: the last); 0: the room's next under the row's lock."""
    with transaction.atomic():
        event = (
            WebhookEvent.objects.select_for_update()
            .filter(room_id=room_id, seq__isnull=True, type=EventType.ROOM_CLOSED)
            .first()
        )
        if event is None:
            return
        rooms = Room.objects.filter(pk=room_id)
        if seq:
            rooms.update(webhook_seq=Greatest(F("webhook_seq"), Value(seq)))
        else:
            rooms.update(webhook_seq=F("webhook_seq") + 1)
            seq = rooms.values_list("webhook_seq", flat=True).get()
        event.seq = seq
        event.data = {**event.data, "seq": seq}
        event.save(update_fields=["seq", "data"])


@dataclass(frozen=True, slots=True)
class Pending:
    """A participant event on its way to the outbox, numbered in presence (``seq``; 0: none)."""

    room_id: str
    type: EventType
    seq: int
    participant_count: int
    occurred_at: datetime
    fields: dict[str, Any]


def record_batch(events: list[Pending]) -> int:
    """Write participant events in one transaction, each in a savepoint of its own.

    An event the database refuses for a reason other than an outage (a ``seq`` taken
    already, a room deleted) is dropped alone; an outage (``OperationalError``) rolls the
    whole batch back and propagates, so the caller keeps it.

    Returns:
        How many events were dropped.
    """
    dropped = 0
    with transaction.atomic():
        for event in events:
            try:
                with transaction.atomic():
                    record(
                        event.room_id,
                        event.type,
                        event.participant_count,
                        seq=event.seq,
                        occurred_at=event.occurred_at,
                        **event.fields,
                    )
            except (OperationalError, InterfaceError):
                raise  # an outage: the caller keeps the batch
            except DatabaseError:
                logger.exception("webhook event %s could not be written; dropped", event)
                dropped += 1
    return dropped


def claim_due(limit: int, now: datetime | None = None, *, may_skip_gaps: bool = True) -> list[ClaimedEvent]:
    """Lease up to ``limit`` due events, at most one per room (its oldest pending), oldest first.

    Args:
        limit: at most this many.
        now: the time (default: now).
        may_skip_gaps: False right after a database outage, while the instances write what
            they kept: a missing predecessor holds its room whatever its age.
    """
    now = now or timezone.now()
    stale = now - timedelta(seconds=GAP_S)
    earlier_pending = WebhookEvent.objects.filter(
        room_id=OuterRef("room_id"), state=WebhookState.PENDING, seq__lt=OuterRef("seq")
    )
    predecessor = WebhookEvent.objects.filter(room_id=OuterRef("room_id"), seq=OuterRef("seq") - 1)
    in_order = Q(seq=1) | Q(Exists(predecessor))
    if may_skip_gaps:
        in_order |= Q(next_attempt_at__lte=stale, attempts=0)
    lease_until = now + timedelta(seconds=LEASE_S)
    with transaction.atomic():
        due = (
            WebhookEvent.objects.filter(state=WebhookState.PENDING, next_attempt_at__lte=now, seq__isnull=False)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .filter(~Exists(earlier_pending))
            .filter(in_order)
            .order_by("id")
            .select_for_update(skip_locked=True, of=("self",))[:limit]
        )
        events = list(due)
        WebhookEvent.objects.filter(pk__in=[event.pk for event in events]).update(lease_until=lease_until)
    return [ClaimedEvent(event.pk, event.webhook_id, body_of(event), lease_until) for event in events]


def number_stale_closes(now: datetime | None = None) -> int:
    """Number every ``room.closed`` left unnumbered for more than ``GAP_S`` (its numbering
    after the close was lost: an outage, a crash) with its room's next ``seq``.

    Returns:
        How many were numbered.
    """
    stale = (now or timezone.now()) - timedelta(seconds=GAP_S)
    room_ids = list(
        WebhookEvent.objects.filter(seq__isnull=True, state=WebhookState.PENDING, next_attempt_at__lte=stale)
        .values_list("room_id", flat=True)
        .distinct()
    )
    for room_id in room_ids:
        number_room_closed(room_id)
    return len(room_ids)


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


def release_leases(held: list[ClaimedEvent]) -> int:
    """Give up the leases of events this instance will not deliver (a clean shutdown): they
    are due again at once, for any instance. A lease taken over meanwhile is left alone.

    Returns:
        How many leases were released.
    """
    released = 0
    with transaction.atomic():
        for claimed in held:
            released += WebhookEvent.objects.filter(
                pk=claimed.pk, lease_until=claimed.lease_until, state=WebhookState.PENDING
            ).update(lease_until=None)
    return released


def retry_now(pks: list[int], now: datetime | None = None) -> int:
    """Make these events due at once (the admin's "retry now"): pending ones skip their wait,
    failed ones are pending again for one more attempt; delivered ones are left alone.

    Returns:
        How many events will be retried.
    """
    now = now or timezone.now()
    return WebhookEvent.objects.filter(pk__in=pks, state__in=(WebhookState.PENDING, WebhookState.FAILED)).update(
        state=WebhookState.PENDING, next_attempt_at=now
    )


def events_after(after_id: int | None = None, room_id: str | None = None) -> QuerySet[WebhookEvent]:
    """Events oldest first, after the event of primary key ``after_id``, of one room if given."""
    events = WebhookEvent.objects.order_by("id")
    if after_id is not None:
        events = events.filter(id__gt=after_id)
    if room_id is not None:
        events = events.filter(room_id=room_id)
    return events
