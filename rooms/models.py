"""The Room model: persistent room identity, settings and lifecycle timestamps.

Owns the ``rooms_room`` table. Lifecycle writes (first join, close, expiry) go through
``rooms.services`` (or ``signaling.service``), never a bare ``save()`` in a view.
Never imports ``signaling``. Implements SPEC.md sections 2 and 4 (closed rooms stay).
"""

from __future__ import annotations

import secrets

from django.db import models
from django.utils import timezone

from rooms.enums import CloseReason, DuplicateIdentity, RoomType

ROOM_ID_PREFIX = "r_"
# 16 random bytes = 128 bits: unguessable; token_urlsafe gives 22 URL-safe characters.
ROOM_ID_RANDOM_BYTES = 16
ROOM_NAME_MAX_LENGTH = 100
AGENT_ID_MAX_LENGTH = 128
# SPEC section 2: settings.maxDuration is 1-1440 minutes (one day) or null.
MAX_DURATION_MIN_LIMIT = 1440
# SPEC section 9: kick reasons are at most 200 characters; a ban lasts at most 30 days.
BAN_REASON_MAX_LENGTH = 200
MAX_BAN_SECONDS = 2_592_000


def new_room_id() -> str:
    """Return a fresh URL-safe, unguessable room id such as ``r_3f9c1a...``."""
    return ROOM_ID_PREFIX + secrets.token_urlsafe(ROOM_ID_RANDOM_BYTES)


class RoomQuerySet(models.QuerySet["Room"]):
    """Queries over rooms."""

    def open(self) -> RoomQuerySet:
        """Rooms that have not closed."""
        return self.filter(closed_at__isnull=True)

    def closed(self) -> RoomQuerySet:
        """Rooms that have closed."""
        return self.filter(closed_at__isnull=False)


class Room(models.Model):
    """A voice or video room; closed rooms stay in the table with their history."""

    id = models.CharField(primary_key=True, max_length=40, default=new_room_id, editable=False)
    name = models.CharField(max_length=ROOM_NAME_MAX_LENGTH)
    type = models.CharField(max_length=8, choices=[(t.value, t.value) for t in RoomType])
    mute_on_entry = models.BooleanField(default=False)
    allow_recording = models.BooleanField(default=False)
    max_duration_min = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Minutes after the first join at which the room closes.",
    )
    max_participants = models.PositiveIntegerField()
    created_by = models.CharField(max_length=AGENT_ID_MAX_LENGTH, help_text="agentId of the creator.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    first_joined_at = models.DateTimeField(null=True, blank=True)
    closes_at = models.DateTimeField(
        null=True,
        blank=True,
        db_index=True,
        help_text="first_joined_at + max duration.",
    )
    expires_at = models.DateTimeField(
        null=True,
        blank=True,
        db_index=True,
        help_text="When the room closes if still empty.",
    )
    closed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    occupancy_version = models.BigIntegerField(
        default=0,
        db_default=0,
        editable=False,
        help_text="Presence membership version of the last occupied/empty mark (newer marks win).",
    )
    close_reason = models.CharField(
        max_length=16,
        blank=True,
        default="",
        choices=[(r.value, r.value) for r in CloseReason],
    )
    duplicate_identity = models.CharField(
        max_length=8,
        default=DuplicateIdentity.ALLOW.value,
        db_default=DuplicateIdentity.ALLOW.value,
        choices=[(d.value, d.value) for d in DuplicateIdentity],
        help_text="What a second socket of an agent already in the room does (SPEC section 9).",
    )
    webhook_seq = models.PositiveIntegerField(
        default=0,
        db_default=0,
        editable=False,
        help_text="seq of the room's last webhook event (SPEC section 10); 0: none yet.",
    )

    objects = RoomQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "id")

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"

    @property
    def is_closed(self) -> bool:
        """True once the room has closed (for any reason)."""
        return self.closed_at is not None


class RoomBanQuerySet(models.QuerySet["RoomBan"]):
    """Queries over bans."""

    def active(self, now: object = None) -> RoomBanQuerySet:
        """Bans that have not ended."""
        return self.filter(until__gt=now or timezone.now())


class RoomBan(models.Model):
    """An agent kept out of a room until ``until`` (the durable copy; presence holds the live one)."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="bans")
    agent_id = models.CharField(max_length=AGENT_ID_MAX_LENGTH)
    until = models.DateTimeField(db_index=True)
    reason = models.CharField(max_length=BAN_REASON_MAX_LENGTH, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    objects = RoomBanQuerySet.as_manager()

    class Meta:
        ordering = ("until", "agent_id")
        constraints = [models.UniqueConstraint(fields=("room", "agent_id"), name="rooms_roomban_room_agent")]

    def __str__(self) -> str:
        return f"{self.agent_id} banned from {self.room_id} until {self.until.isoformat()}"


WEBHOOK_ID_PREFIX = "evt_"
# 16 random bytes: a webhook-id unique across databases (receivers deduplicate on it).
WEBHOOK_ID_RANDOM_BYTES = 16


def new_webhook_id() -> str:
    """A fresh ``webhook-id`` such as ``evt_Zx3...`` (Standard Webhooks: unique per message)."""
    return WEBHOOK_ID_PREFIX + secrets.token_urlsafe(WEBHOOK_ID_RANDOM_BYTES)


class WebhookState(models.TextChoices):
    """Where an outbox event stands (SPEC section 10: ``pending``, ``delivered``, ``failed``)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookEvent(models.Model):
    """One webhook event in the outbox: written with the change it describes, delivered later.

    ``seq`` counts the room's events from 1 (``Room.webhook_seq``: the highest written; null
    for a ``room.closed`` until it is numbered, see ``rooms.webhooks``). Delivery
    state lives here too: ``lease_until`` marks an event an instance is delivering right now,
    ``next_attempt_at`` when it is due again. Written and claimed only by ``rooms.webhooks``.
    """

    webhook_id = models.CharField(max_length=40, unique=True, default=new_webhook_id, editable=False)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="webhook_events")
    seq = models.PositiveIntegerField(null=True)
    type = models.CharField(max_length=32)
    occurred_at = models.DateTimeField()
    data = models.JSONField()
    state = models.CharField(
        max_length=10, choices=WebhookState.choices, default=WebhookState.PENDING, db_default=WebhookState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0, db_default=0)
    next_attempt_at = models.DateTimeField()
    lease_until = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True, default="", db_default="")

    class Meta:
        ordering = ("id",)
        constraints = [models.UniqueConstraint(fields=("room", "seq"), name="webhook_event_room_seq")]
        indexes = [
            models.Index(fields=("state", "next_attempt_at"), name="webhook_event_due"),
            # The claim's per-room questions: an earlier pending event, the predecessor.
            models.Index(fields=("room", "state", "seq"), name="webhook_event_room_state_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.seq} of {self.room_id} ({self.state})"
