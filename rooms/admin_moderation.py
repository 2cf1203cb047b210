"""Moderation in the Django admin (SPEC section 9): live participants, kick, ban, mute, lift.

Owns the room change page's moderation section and the one POST view its buttons submit
to (``<room id>/moderate/``), for staff with the change permission on rooms. Each action
makes the same ``signaling.service.moderation_api`` call as the REST API; a saved change
of the room's fields tells its members `room_updated` after the commit. Participants come
from presence (``signaling.service.api``), cluster-wide.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from rest_framework import serializers

from rooms import services
from rooms.models import Room
from rooms.serializers import KickSerializer
from signaling.service import api as live
from signaling.service import moderation_api

ACTIONS = ("kick", "ban", "mute", "unmute", "lift")
DEFAULT_BAN_SECONDS = 3600


class ModerationAdminMixin:
    """For ``RoomAdmin``: the moderation section, its POST view and live counts."""

    change_form_template = "admin/rooms/room/change_form.html"

    @admin.display(description="live participants")
    def live_participants(self, room: Room) -> int:
        """Cluster-wide participant count (0 for a closed room)."""
        return 0 if room.is_closed else live.participant_count(room.id)

    def get_urls(self) -> list[URLPattern]:
        urls: list[URLPattern] = super().get_urls()  # type: ignore[misc]
        moderate = path(
            "<path:object_id>/moderate/",
            self.admin_site.admin_view(self.moderate_view),  # type: ignore[attr-defined]
            name="rooms_room_moderate",
        )
        return [moderate, *urls]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        room = Room.objects.filter(pk=unquote(object_id)).first()  # the admin quotes pks in URLs
        context = dict(extra_context or {})
        if room is not None:
            context["live_participants"] = [] if room.is_closed else live.room_participants(room.id)
            context["room_bans"] = services.active_bans(room.id)
            context["moderate_url"] = reverse("admin:rooms_room_moderate", args=[quote(room.id)])
            context["default_ban_seconds"] = DEFAULT_BAN_SECONDS
        return super().change_view(request, object_id, form_url, context)  # type: ignore[misc]

    def save_model(self, request: HttpRequest, obj: Room, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)  # type: ignore[misc]
        if change and not obj.is_closed:
            transaction.on_commit(lambda: moderation_api.room_updated(obj.id))

    def moderate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST ``action`` (kick, ban, mute, unmute, lift) with ``client_id`` or ``agent_id``."""
        room = get_object_or_404(Room, pk=unquote(object_id))
        if request.method != "POST" or not self.has_change_permission(request, room):  # type: ignore[attr-defined]
            raise PermissionDenied
        back = HttpResponseRedirect(reverse("admin:rooms_room_change", args=[quote(room.id)]))
        action = request.POST.get("action", "")
        if action not in ACTIONS:
            self.message_user(request, "Unknown moderation action.", messages.ERROR)  # type: ignore[attr-defined]
            return back
        if room.is_closed:
            self.message_user(request, "The room is closed.", messages.ERROR)  # type: ignore[attr-defined]
            return back
        level, text = self._apply(room, action, request.POST)
        self.message_user(request, text, level)  # type: ignore[attr-defined]
        return back

    def _apply(self, room: Room, action: str, data: Any) -> tuple[int, str]:
        client_id = data.get("client_id", "")
        if action == "lift":
            agent_id = data.get("agent_id", "")
            if not services.lift_ban(room.id, agent_id):
                return messages.ERROR, f"{agent_id} is not banned from this room."
            moderation_api.ban_lifted(room.id, agent_id)
            return messages.SUCCESS, f"Ban of {agent_id} lifted."
        if action in ("mute", "unmute"):
            updated = moderation_api.set_muted(room.id, client_id, is_muted=action == "mute")
            if updated is None:
                return messages.ERROR, f"{client_id} is not in this room."
            return messages.SUCCESS, f"{client_id} {'muted' if updated['muted'] else 'unmuted'}."
        body: dict[str, Any] = {"reason": data.get("reason", "")}
        if action == "ban":
            try:
                body["banSeconds"] = int(data.get("ban_seconds", ""))
            except ValueError:
                return messages.ERROR, "The ban length must be a whole number of seconds."
        kick = KickSerializer(data=body)
        if not kick.is_valid():
            return messages.ERROR, "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in _errors(kick).items())
        valid = kick.validated_data
        if not moderation_api.kick(
            room.id, client_id, reason=valid.get("reason") or None, ban_seconds=valid.get("banSeconds")
        ):
            return messages.ERROR, f"{client_id} is not in this room."
        return messages.SUCCESS, f"{client_id} kicked" + (" and banned." if action == "ban" else ".")


def _errors(serializer: serializers.Serializer) -> dict[str, Any]:
    return dict(serializer.errors)
