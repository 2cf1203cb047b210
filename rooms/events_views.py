"""``GET /api/events``: the webhook outbox, for reconciliation (SPEC section 10, staff only).

Owns the REST surface of the outbox: a DRF page of events, oldest first, after a given
``webhook-id`` and of one room if asked. Reads only; writes are ``rooms.webhooks``'.
Never imports ``signaling``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics, serializers
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from rooms import webhooks
from rooms.errors import Forbidden
from rooms.models import WebhookEvent
from rooms.permissions import is_staff
from rooms.views import ERROR_RESPONSE

QUERY_ID_MAX_LENGTH = 100


class IsStaff(BasePermission):
    """Staff only: an agent token with ``"is_staff": true`` or a Django staff user (401 without credentials)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user is None or not getattr(user, "is_authenticated", False):
            raise exceptions.NotAuthenticated()
        if not is_staff(user):
            raise Forbidden("Only staff may read the webhook events.")
        return True


class WebhookEventSerializer(serializers.ModelSerializer):
    """One event: ``{id, type, timestamp, roomId, seq, data, state, attempts}`` (``id`` = ``webhook-id``)."""

    id = serializers.CharField(source="webhook_id", read_only=True)
    timestamp = serializers.SerializerMethodField()
    roomId = serializers.CharField(source="room_id", read_only=True)
    data = serializers.DictField(read_only=True)

    class Meta:
        model = WebhookEvent
        fields = ("id", "type", "timestamp", "roomId", "seq", "data", "state", "attempts")
        read_only_fields = fields

    def get_timestamp(self, event: WebhookEvent) -> str:
        """When the change happened: ISO 8601 UTC with milliseconds and Z."""
        return webhooks.iso_utc(event.occurred_at)


class EventQuerySerializer(serializers.Serializer):
    """``?after=<webhook-id>&roomId=<id>``, both optional."""

    after = serializers.CharField(required=False, max_length=QUERY_ID_MAX_LENGTH)
    roomId = serializers.CharField(required=False, max_length=QUERY_ID_MAX_LENGTH)

    def validate_after(self, value: str) -> int:
        """The primary key of the event named ``after``; an unknown id is a 400."""
        pk = WebhookEvent.objects.filter(webhook_id=value).values_list("id", flat=True).first()
        if pk is None:
            raise serializers.ValidationError("No event has this id.")
        return int(pk)


class EventListView(generics.ListAPIView):
    """``GET /api/events``: webhook events oldest first, with their delivery state."""

    serializer_class = WebhookEventSerializer
    permission_classes = [IsStaff]

    @extend_schema(
        parameters=[
            OpenApiParameter("after", OpenApiTypes.STR, description="Only events after this event id (webhook-id)."),
            OpenApiParameter("roomId", OpenApiTypes.STR, description="Only this room's events."),
        ],
        responses={
            200: WebhookEventSerializer(many=True),
            400: ERROR_RESPONSE,
            401: ERROR_RESPONSE,
            403: ERROR_RESPONSE,
        },
        summary="List webhook events, oldest first (staff)",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """A DRF page of events (``count``, ``next``, ``previous``, ``results``)."""
        return self.list(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        """The events the query asks for, oldest first."""
        query = EventQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return webhooks.events_after(query.validated_data.get("after"), query.validated_data.get("roomId"))
