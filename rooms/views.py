"""REST views: rooms, join tokens, ICE servers, stats, health (SPEC sections 2 and 8).

Owns the HTTP surface of ``/api/rooms``, ``/api/ice-servers``, ``/api/stats``, ``/healthz``
and ``/readyz``.
Views raise coded exceptions (``rooms.errors``); lifecycle writes go through
``rooms.services``; live data (participants, counts, cluster stats, ``room_closed``
broadcasts, readiness) comes from ``signaling.service.api`` (sync calls), imported as
``live``; tests patch its functions, never a verifier.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import DatabaseError, connection, transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rooms import services
from rooms.apps import PROCESS_STARTED_MONOTONIC
from rooms.authentication import AgentTokenAuthentication
from rooms.enums import CloseReason, RoomType
from rooms.errors import Forbidden, NotReady, RoomClosed, RoomFull, RoomNotFound
from rooms.ice import ice_servers_for, ice_ttl_s
from rooms.models import Room
from rooms.permissions import IsAgent, IsCreatorOrStaff
from rooms.serializers import (
    IceServersSerializer,
    JoinTokenSerializer,
    RoomCreateSerializer,
    RoomSerializer,
    RoomUpdateSerializer,
)
from rooms.tokens import mint_join_token
from signaling import lifecycle
from signaling.admission import REFUSAL_MESSAGES
from signaling.service import api as live
from signaling.service import moderation_api as live_moderation

logger = logging.getLogger(__name__)


def announce_closed_on_commit(room_id: str, reason: CloseReason) -> None:
    """Tell the room's sockets ``room_closed`` once the closing transaction commits."""
    transaction.on_commit(lambda: live.room_closed(room_id, reason.value))


class RoomTypeFilterSerializer(serializers.Serializer):
    """``GET /api/rooms`` query: ``?type=voice|video``."""

    type = serializers.ChoiceField(choices=[t.value for t in RoomType], required=False)


ERROR_RESPONSE = inline_serializer(
    "Error",
    {
        "detail": serializers.CharField(),
        "code": serializers.CharField(),
        "errors": serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False),
    },
)


class RoomViewSet(viewsets.GenericViewSet):
    """``/api/rooms``: create, list open rooms, detail, close, join tokens."""

    queryset = Room.objects.all()
    serializer_class = RoomSerializer
    lookup_value_regex = r"[^/]+"

    def get_permissions(self) -> list[BasePermission]:
        """Creating and joining need an agent token; closing needs the creator or staff."""
        if self.action in ("create", "join"):
            return [IsAgent()]
        if self.action in ("destroy", "partial_update"):
            return [IsCreatorOrStaff()]
        return [AllowAny()]

    def get_room(self) -> Room:
        """The room named in the URL (open or closed), with object permissions checked.

        Raises:
            RoomNotFound: no room has that id.
        """
        try:
            room = Room.objects.get(pk=self.kwargs["pk"])
        except Room.DoesNotExist as exc:
            raise RoomNotFound() from exc
        self.check_object_permissions(self.request, room)
        return room

    @extend_schema(
        request=RoomCreateSerializer,
        responses={201: RoomSerializer, 400: ERROR_RESPONSE, 401: ERROR_RESPONSE},
        summary="Create a room",
    )
    def create(self, request: Request) -> Response:
        """``POST /api/rooms``: 201 with the new room."""
        body = RoomCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        room_settings = data["settings"]
        room = services.create_room(
            name=data["name"],
            room_type=data["type"],
            created_by=request.user.agent_id,
            mute_on_entry=room_settings["muteOnEntry"],
            allow_recording=room_settings["allowRecording"],
            max_duration_min=room_settings["maxDuration"],
            max_participants=room_settings["maxParticipants"],
            duplicate_identity=room_settings["duplicateIdentity"],
        )
        live.remember_room(room)
        logger.info("room %s created by %s", room.id, room.created_by)
        return Response(
            RoomSerializer(room, context={"participant_counts": {}}).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        parameters=[OpenApiParameter("type", OpenApiTypes.STR, enum=[t.value for t in RoomType])],
        responses={200: RoomSerializer(many=True), 400: ERROR_RESPONSE},
        summary="List open rooms, newest first",
    )
    def list(self, request: Request) -> Response:
        """``GET /api/rooms``: a DRF page of open rooms, optionally of one ``type``."""
        query = RoomTypeFilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        rooms = Room.objects.open().order_by("-created_at", "id")
        if "type" in query.validated_data:
            rooms = rooms.filter(type=query.validated_data["type"])
        page = self.paginate_queryset(rooms)
        assert page is not None  # PAGE_SIZE is set, so DRF always paginates
        counts = live.participant_counts([room.id for room in page]) if page else {}
        return self.get_paginated_response(RoomSerializer(page, many=True, context={"participant_counts": counts}).data)

    @extend_schema(
        responses={200: RoomSerializer, 404: ERROR_RESPONSE},
        summary="Room detail with live participants",
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        """``GET /api/rooms/{id}``: the room plus live ``participants``; closed rooms too."""
        room = self.get_room()
        participants = [] if room.is_closed else live.room_participants(room.id)
        context = {
            "participant_counts": {room.id: len(participants)},
            "participants": participants,
        }
        return Response(RoomSerializer(room, context=context).data)

    @extend_schema(
        responses={
            204: None,
            401: ERROR_RESPONSE,
            403: ERROR_RESPONSE,
            404: ERROR_RESPONSE,
            410: ERROR_RESPONSE,
        },
        summary="Close a room (creator or staff)",
    )
    def destroy(self, request: Request, pk: str) -> Response:
        """``DELETE /api/rooms/{id}``: close the room; its sockets get ``room_closed``."""
        room = self.get_room()
        if room.is_closed:
            raise RoomClosed()
        with transaction.atomic():
            closed = services.close_room_row(room.id, CloseReason.DELETED)
            # None: another request closed it between our read and our update.
            if closed is None:
                raise RoomClosed()
            announce_closed_on_commit(room.id, CloseReason.DELETED)
        logger.info("room %s closed (deleted) by %s", room.id, request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=RoomUpdateSerializer,
        responses={200: RoomSerializer, **{code: ERROR_RESPONSE for code in (400, 401, 403, 404, 410)}},
        summary="Change a room's name and/or settings (creator or staff)",
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        """Update the row; every member gets `room_updated`; a lower cap keeps those present."""
        room = self.get_room()
        if room.is_closed:
            raise RoomClosed()
        body = RoomUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        with transaction.atomic():
            updated = services.update_room(room.id, name=data.get("name"), settings_changes=data.get("settings"))
            if updated is None:
                raise RoomClosed()
            transaction.on_commit(lambda: live_moderation.room_updated(room.id))
        logger.info("room %s updated by %s: %s", room.id, request.user, sorted(data))
        count = live.participant_count(room.id)
        return Response(RoomSerializer(updated, context={"participant_counts": {room.id: count}}).data)

    @extend_schema(
        request=None,
        responses={
            200: JoinTokenSerializer,
            401: ERROR_RESPONSE,
            403: ERROR_RESPONSE,
            404: ERROR_RESPONSE,
            409: ERROR_RESPONSE,
            410: ERROR_RESPONSE,
        },
        summary="Get a join token for a room",
    )
    @action(detail=True, methods=["post"], url_path="join")
    def join(self, request: Request, pk: str) -> Response:
        """``POST /api/rooms/{id}/join``: a short-lived join token for this room.

        The cap is checked here as a courtesy; the socket join enforces it atomically.
        """
        room = self.get_room()
        if room.is_closed:
            raise RoomClosed()
        if services.is_banned(room.id, request.user.agent_id):
            raise Forbidden("This agent is banned from the room.")
        if live.participant_count(room.id) >= services.effective_max_participants(room):
            raise RoomFull()
        agent_id = request.user.agent_id
        token, expires_in_s = mint_join_token(agent_id, room.id)
        return Response(
            {
                "token": token,
                "roomId": room.id,
                "expiresIn": expires_in_s,
                "iceServers": ice_servers_for(agent_id),
            }
        )


class IceServersView(APIView):
    """``GET /api/ice-servers``: fresh ICE servers (TURN credentials) for the calling agent."""

    # SPEC section 8: a Bearer agent token; a staff session has no agentId to mint for.
    authentication_classes = (AgentTokenAuthentication,)
    permission_classes = (IsAgent,)

    @extend_schema(
        responses={200: IceServersSerializer, 401: ERROR_RESPONSE},
        summary="ICE servers with fresh TURN credentials",
    )
    def get(self, request: Request) -> Response:
        """200 ``{iceServers, ttl}``; a socket living longer than ``ttl`` refreshes here."""
        return Response({"iceServers": ice_servers_for(request.user.agent_id), "ttl": ice_ttl_s()})


class StatsView(APIView):
    """``GET /api/stats``: cluster-wide counters."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(
        responses=inline_serializer(
            "Stats",
            {
                "rooms": inline_serializer(
                    "RoomStats",
                    {
                        "total": serializers.IntegerField(),
                        "active": serializers.IntegerField(),
                    },
                ),
                "connections": serializers.IntegerField(),
                "participants": serializers.IntegerField(),
                "uptimeSeconds": serializers.FloatField(),
                "instances": serializers.IntegerField(),
            },
        ),
        summary="Server statistics (cluster-wide)",
    )
    def get(self, request: Request) -> Response:
        """``rooms.total`` counts every room ever created; the rest is live."""
        cluster = live.cluster_stats()
        return Response(
            {
                "rooms": {
                    "total": Room.objects.count(),
                    "active": cluster["activeRooms"],
                },
                "connections": cluster["connections"],
                "participants": cluster["participants"],
                "uptimeSeconds": round(time.monotonic() - PROCESS_STARTED_MONOTONIC, 3),
                "instances": cluster["instances"],
            }
        )


class HealthView(APIView):
    """``GET /healthz``: the process answers."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(
        responses=inline_serializer("Health", {"status": serializers.CharField()}),
        summary="Liveness",
    )
    def get(self, request: Request) -> Response:
        """Always 200 ``{"status": "ok"}``."""
        return Response({"status": "ok"})


class ReadyView(APIView):
    """``GET /readyz``: the database and the channel layer answer."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(
        responses={
            200: inline_serializer("Ready", {"status": serializers.CharField()}),
            503: ERROR_RESPONSE,
        },
        summary="Readiness",
    )
    def get(self, request: Request) -> Response:
        """200 ``{"status": "ready"}``; 503 ``{status, detail, code}`` with ``draining`` or
        ``overloaded`` while new sessions are refused (draining after SIGTERM, or past capacity); else 503
        ``{detail, code: "not_ready", checks}`` when a dependency does not answer."""
        refusal = lifecycle.admission().refusal(time.monotonic())
        if refusal is not None:
            body = {"status": str(refusal), "detail": REFUSAL_MESSAGES[refusal], "code": str(refusal)}
            return Response(body, status=NotReady.status_code)
        checks = {"database": self._database(), "channelLayer": self._channel_layer()}
        if all(result == "ok" for result in checks.values()):
            return Response({"status": "ready"})
        failing = ", ".join(name for name, result in checks.items() if result != "ok")
        body: dict[str, Any] = {
            "detail": f"Not ready: {failing} did not answer.",
            "code": NotReady.default_code,
            "checks": checks,
        }
        return Response(body, status=NotReady.status_code)

    @staticmethod
    def _database() -> str:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except DatabaseError:
            logger.warning("readiness: database check failed", exc_info=True)
            return "error"
        return "ok"

    @staticmethod
    def _channel_layer() -> str:
        try:
            live.check_ready()
        # A readiness probe reports any failure of the dependency (redis errors, timeouts,
        # import errors of the socket layer) as "not ready" rather than a 500.
        except Exception:
            logger.warning("readiness: channel layer check failed", exc_info=True)
            return "error"
        return "ok"
