"""REST moderation (SPEC section 9): kick (with a ban), bans listed and lifted, mute.

Owns ``POST /api/rooms/{id}/participants/{clientId}/kick``, ``PATCH
/api/rooms/{id}/participants/{clientId}``, ``GET /api/rooms/{id}/bans`` and ``DELETE
/api/rooms/{id}/bans/{agentId}`` (``PATCH /api/rooms/{id}`` is ``RoomViewSet.partial_update``). Creator-or-staff only; a
closed room answers 410. Views raise coded exceptions; row writes go through
``rooms.services``; live effects (the kick, the mute, `room_updated`) through
``signaling.service.moderation_api``, the same calls the admin makes.
"""

from __future__ import annotations

import logging

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from rooms import services
from rooms.errors import RoomClosed, RoomNotFound
from rooms.models import Room
from rooms.permissions import IsCreatorOrStaff
from rooms.serializers import (
    BanSerializer,
    KickSerializer,
    MuteSerializer,
    ParticipantSerializer,
)
from rooms.views import ERROR_RESPONSE as ERROR
from signaling.service import moderation_api

logger = logging.getLogger(__name__)

MODERATION_ERRORS = {401: ERROR, 403: ERROR, 404: ERROR, 410: ERROR}


class ParticipantNotFound(NotFound):
    """404: that clientId is not in the room."""

    default_detail = "No participant with that clientId is in the room."
    default_code = "participant_not_found"


class BanNotFound(NotFound):
    """404: that agent is not banned from the room."""

    default_detail = "That agent is not banned from the room."
    default_code = "ban_not_found"


def open_room(view: viewsets.GenericViewSet, room_id: str) -> Room:
    """The room named in the URL, permissions checked; 404 unknown, 410 closed."""
    try:
        room = Room.objects.get(pk=room_id)
    except Room.DoesNotExist as exc:
        raise RoomNotFound() from exc
    view.check_object_permissions(view.request, room)
    if room.is_closed:
        raise RoomClosed()
    return room


class RoomModerationViewSet(viewsets.GenericViewSet):
    """Kicks, bans and mutes of one room's participants (creator or staff)."""

    queryset = Room.objects.all()
    serializer_class = BanSerializer
    lookup_value_regex = r"[^/]+"

    def get_permissions(self) -> list[BasePermission]:
        return [IsCreatorOrStaff()]

    @extend_schema(
        request=KickSerializer,
        responses={204: None, 400: ERROR, **MODERATION_ERRORS},
        summary="Kick a participant, optionally banning its agent (creator or staff)",
    )
    def kick(self, request: Request, pk: str, client_id: str) -> Response:
        """The socket gets `kicked` and is out of the room; the others get `user_left` (kicked)."""
        room = open_room(self, pk)
        body = KickSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if not moderation_api.kick(
            room.id, client_id, reason=data.get("reason") or None, ban_seconds=data.get("banSeconds")
        ):
            raise ParticipantNotFound()
        logger.info("room %s: %s kicked by %s (ban %s s)", room.id, client_id, request.user, data.get("banSeconds"))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=MuteSerializer,
        responses={200: ParticipantSerializer, 400: ERROR, **MODERATION_ERRORS},
        summary="Mute or unmute a participant (creator or staff)",
    )
    def participant(self, request: Request, pk: str, client_id: str) -> Response:
        """Everyone in the room, the participant included, gets `participant_updated`."""
        room = open_room(self, pk)
        body = MuteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        updated = moderation_api.set_muted(room.id, client_id, is_muted=body.validated_data["muted"])
        if updated is None:
            raise ParticipantNotFound()
        return Response(updated)

    @extend_schema(
        request=None,
        responses={200: BanSerializer(many=True), **MODERATION_ERRORS},
        summary="List a room's bans that have not ended (creator or staff)",
    )
    def bans(self, request: Request, pk: str) -> Response:
        """``[{agentId, until, reason}]``, soonest end first."""
        room = open_room(self, pk)
        return Response(BanSerializer(services.active_bans(room.id), many=True).data)

    @extend_schema(
        request=None,
        responses={204: None, **MODERATION_ERRORS},
        summary="Lift a ban (creator or staff)",
    )
    def lift_ban(self, request: Request, pk: str, agent_id: str) -> Response:
        """The agent may join the room again."""
        room = open_room(self, pk)
        if not services.lift_ban(room.id, agent_id):
            raise BanNotFound()
        moderation_api.ban_lifted(room.id, agent_id)
        logger.info("room %s: ban of %s lifted by %s", room.id, agent_id, request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
