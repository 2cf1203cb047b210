"""Room (de)serialisation: the strict create body and the wire representation (SPEC section 2).

Owns: every camelCase room key (``muteOnEntry``, ``createdAt``, ...) — the one place the
room shape is built, for REST and for the socket layer's ``joined.room``. Input types are
strict JSON types: ``"60"`` is not an integer, ``1`` is not a boolean, ``true`` is not an
integer, and ``settings`` takes no unknown keys. Unknown top-level keys are ignored.

Never imports ``signaling``: live participant data comes in through the serializer context
(``participant_counts``: ``{room_id: count}``, ``participants``: wire dicts).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from django.conf import settings as django_settings
from rest_framework import serializers

from rooms.enums import DuplicateIdentity, RoomType
from rooms.models import (
    BAN_REASON_MAX_LENGTH,
    MAX_BAN_SECONDS,
    MAX_DURATION_MIN_LIMIT,
    ROOM_NAME_MAX_LENGTH,
    Room,
    RoomBan,
)


def iso_utc(value: datetime) -> str:
    """Format ``value`` like JavaScript's ``Date.toISOString()``: ``2026-11-26T15:00:00.000Z``."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class StrictCharField(serializers.CharField):
    """A CharField that accepts JSON strings only (DRF's would coerce numbers)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A JSON ``true``/``false`` only: ``1``, ``0``, ``"true"`` are rejected."""

    default_error_messages: ClassVar[dict[str, str]] = {"invalid": "Must be a JSON boolean (true or false)."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only: ``"60"``, ``60.0`` and booleans are rejected."""

    default_error_messages: ClassVar[dict[str, str]] = {"invalid": "Must be a JSON integer."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictChoiceField(serializers.ChoiceField):
    """A ChoiceField that accepts JSON strings only."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


class RoomSettingsSerializer(serializers.Serializer):
    """The optional ``settings`` object of a create body; unknown keys are rejected."""

    muteOnEntry = StrictBooleanField(required=False, default=False)
    allowRecording = StrictBooleanField(required=False, default=False)
    maxDuration = StrictIntegerField(
        required=False,
        default=None,
        allow_null=True,
        min_value=1,
        max_value=MAX_DURATION_MIN_LIMIT,
    )
    maxParticipants = StrictIntegerField(required=False, min_value=1)
    duplicateIdentity = StrictChoiceField(
        choices=[d.value for d in DuplicateIdentity], required=False, default=DuplicateIdentity.ALLOW.value
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        """Bound ``maxParticipants`` by the current ``MAX_PARTICIPANTS``."""
        fields = super().get_fields()
        cap = django_settings.SIGNALING.max_participants
        fields["maxParticipants"] = StrictIntegerField(required=False, default=cap, min_value=1, max_value=cap)
        return fields

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        """Reject keys this object does not define, then validate the known ones."""
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["Unknown setting."] for key in unknown}, code="unknown_field")
        return super().to_internal_value(data)


class RoomCreateSerializer(serializers.Serializer):
    """``POST /api/rooms`` body: ``name``, ``type``, optional ``settings``."""

    name = StrictCharField(max_length=ROOM_NAME_MAX_LENGTH, trim_whitespace=True, allow_blank=False)
    type = StrictChoiceField(choices=[t.value for t in RoomType])
    settings = RoomSettingsSerializer(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Fill in the defaults of an absent ``settings`` object."""
        if "settings" not in attrs:
            attrs["settings"] = RoomSettingsSerializer(data={}).run_validation({})
        return attrs


class RoomSerializer(serializers.ModelSerializer):
    """The room representation of the REST API (read-only).

    Context:
        participant_counts: ``{room_id: live count}``; absent rooms count 0.
        participants: for the detail view, the live participant wire dicts.
    """

    settings = serializers.SerializerMethodField()
    createdBy = serializers.CharField(source="created_by")
    createdAt = serializers.SerializerMethodField()
    participantCount = serializers.SerializerMethodField()

    class Meta:
        model = Room
        fields = (
            "id",
            "name",
            "type",
            "settings",
            "createdBy",
            "createdAt",
            "participantCount",
        )
        read_only_fields = fields

    def get_settings(self, room: Room) -> dict[str, Any]:
        """``{muteOnEntry, allowRecording, maxDuration, maxParticipants, duplicateIdentity}``."""
        return {
            "muteOnEntry": room.mute_on_entry,
            "allowRecording": room.allow_recording,
            "maxDuration": room.max_duration_min,
            "maxParticipants": room.max_participants,
            "duplicateIdentity": room.duplicate_identity,
        }

    def get_createdAt(self, room: Room) -> str:
        """Creation time, ISO 8601 UTC."""
        return iso_utc(room.created_at)

    def get_participantCount(self, room: Room) -> int:
        """Live, cluster-wide participant count (0 for closed rooms)."""
        if room.is_closed:
            return 0
        return int(self.context.get("participant_counts", {}).get(room.id, 0))

    def to_representation(self, room: Room) -> dict[str, Any]:
        """Add ``closed`` (and ``closedAt``/``closeReason`` once closed), and ``participants``."""
        data: dict[str, Any] = super().to_representation(room)
        if "participants" in self.context:
            data["participants"] = [] if room.is_closed else list(self.context["participants"])
        data["closed"] = room.is_closed
        if room.closed_at is not None:
            data["closedAt"] = iso_utc(room.closed_at)
            data["closeReason"] = room.close_reason
        return data


def room_representation(
    room: Room,
    *,
    participant_count: int,
    participants: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return ``room``'s wire dict (for the socket layer's ``joined.room`` too).

    Args:
        room: the room.
        participant_count: live count to report as ``participantCount``.
        participants: when given, added as ``participants`` (the REST detail shape).
    """
    context: dict[str, Any] = {"participant_counts": {room.id: participant_count}}
    if participants is not None:
        context["participants"] = participants
    return dict(RoomSerializer(room, context=context).data)


class IceServerSerializer(serializers.Serializer):
    """One ``RTCIceServer`` (README, "TURN / ICE servers"; documentation only)."""

    urls = serializers.ListField(child=serializers.CharField(), help_text="stun:, turn: or turns: URIs.")
    username = serializers.CharField(
        required=False, help_text='TURN only: "<expiry Unix time>:<agentId>" (TURN REST API scheme).'
    )
    credential = serializers.CharField(
        required=False, help_text="TURN only: base64 of HMAC-SHA1(TURN_SECRET, username)."
    )


class JoinTokenSerializer(serializers.Serializer):
    """``POST /api/rooms/{id}/join`` answer (documentation only)."""

    token = serializers.CharField()
    roomId = serializers.CharField()
    expiresIn = serializers.IntegerField(help_text="Seconds until the token expires.")
    iceServers = IceServerSerializer(many=True, help_text="RTCConfiguration.iceServers for this agent.")


class IceServersSerializer(serializers.Serializer):
    """``GET /api/ice-servers`` answer (documentation only)."""

    iceServers = IceServerSerializer(many=True, help_text="RTCConfiguration.iceServers for this agent.")
    ttl = serializers.IntegerField(help_text="TURN_TTL: seconds the TURN credentials stay valid.")


class RoomSettingsUpdateSerializer(RoomSettingsSerializer):
    """A partial ``settings`` object of ``PATCH /api/rooms/{id}``: the create rules, no defaults."""

    def get_fields(self) -> dict[str, serializers.Field]:
        """The create fields, each optional and without a default."""
        fields = super().get_fields()
        for field in fields.values():
            field.default = serializers.empty
            field.required = False
        return fields


class RoomUpdateSerializer(serializers.Serializer):
    """``PATCH /api/rooms/{id}`` body: ``name`` and/or a partial ``settings`` (docs/protocol.md, moderation)."""

    name = StrictCharField(max_length=ROOM_NAME_MAX_LENGTH, trim_whitespace=True, allow_blank=False, required=False)
    settings = RoomSettingsUpdateSerializer(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """At least one change."""
        if "name" not in attrs and not attrs.get("settings"):
            raise serializers.ValidationError("Give name and/or settings to change.", code="empty")
        return attrs


class KickSerializer(serializers.Serializer):
    """``POST .../participants/{clientId}/kick`` body (docs/protocol.md, moderation)."""

    reason = StrictCharField(max_length=BAN_REASON_MAX_LENGTH, required=False, allow_blank=True, trim_whitespace=False)
    banSeconds = StrictIntegerField(required=False, min_value=1, max_value=MAX_BAN_SECONDS)


class MuteSerializer(serializers.Serializer):
    """``PATCH .../participants/{clientId}`` body (docs/protocol.md, moderation)."""

    muted = StrictBooleanField()


class ParticipantSerializer(serializers.Serializer):
    """A live participant (documentation only): ``{clientId, agentId, joinedAt, muted}``."""

    clientId = serializers.CharField()
    agentId = serializers.CharField()
    joinedAt = serializers.CharField()
    muted = serializers.BooleanField()


class BanSerializer(serializers.ModelSerializer):
    """A ban: ``{agentId, until, reason}``."""

    agentId = serializers.CharField(source="agent_id")
    until = serializers.SerializerMethodField()

    class Meta:
        model = RoomBan
        fields = ("agentId", "until", "reason")
        read_only_fields = fields

    def get_until(self, ban: RoomBan) -> str:
        """When the ban ends, ISO 8601 UTC."""
        return iso_utc(ban.until)
