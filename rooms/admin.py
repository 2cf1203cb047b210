"""Django admin for rooms: browse, search, close rooms, and moderate them (SPEC section 9).

Closing goes through ``rooms.services.close_room_row``; ``room_closed`` is broadcast from
``transaction.on_commit`` via ``signaling.service.api`` (``rooms.views.announce_closed_on_commit``).
The change page lists the room's live participants (presence, cluster-wide) with kick,
kick-and-ban and mute actions, and its bans with a lift action
(:mod:`rooms.admin_moderation`); the list shows live counts. Those actions make the same
``signaling.service.moderation_api`` calls as REST. The webhook outbox has its own,
read-only admin (:mod:`rooms.admin_webhooks`).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from rooms import (
    admin_webhooks,  # noqa: F401 - registers the webhook outbox's admin
    services,
)
from rooms.admin_moderation import ModerationAdminMixin
from rooms.enums import CloseReason
from rooms.models import Room
from rooms.views import announce_closed_on_commit


class ClosedFilter(admin.SimpleListFilter):
    """Open / closed rooms."""

    title = "closed"
    parameter_name = "closed"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Closed"), ("no", "Open")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Room]) -> QuerySet[Room]:
        if self.value() == "yes":
            return queryset.filter(closed_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(closed_at__isnull=True)
        return queryset


@admin.register(Room)
class RoomAdmin(ModerationAdminMixin, admin.ModelAdmin):
    """Rooms, newest first; lifecycle fields are read-only (they change through services)."""

    list_display = (
        "id",
        "name",
        "type",
        "created_by",
        "created_at",
        "closed_at",
        "close_reason",
        "live_participants",
    )
    list_filter = ("type", ClosedFilter)
    search_fields = ("name", "id", "created_by")
    ordering = ("-created_at",)
    readonly_fields = (
        "id",
        "created_by",
        "created_at",
        "first_joined_at",
        "closes_at",
        "expires_at",
        "closed_at",
        "close_reason",
    )
    actions = ("close_selected_rooms",)

    @admin.action(description="Close selected rooms")
    def close_selected_rooms(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        """Close every selected open room; its participants get ``room_closed`` (deleted)."""
        closed = 0
        for room_id in queryset.values_list("id", flat=True):
            with transaction.atomic():
                try:
                    room = services.close_room_row(room_id, CloseReason.DELETED)
                except Room.DoesNotExist:
                    continue  # deleted from the table meanwhile: nothing to close
                if room is not None:
                    announce_closed_on_commit(room.id, CloseReason.DELETED)
                    closed += 1
        self.message_user(request, f"Closed {closed} room(s).", messages.SUCCESS)
