"""URL routes of the rooms app (SPEC section 2): no trailing slashes, as the seed had."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from rooms.events_views import EventListView
from rooms.moderation_views import RoomModerationViewSet
from rooms.views import HealthView, IceServersView, ReadyView, RoomViewSet, StatsView

router = SimpleRouter(trailing_slash=False)
router.register("api/rooms", RoomViewSet, basename="room")

# SPEC section 9; ids are path segments (any characters but "/").
moderation = [
    path(
        "api/rooms/<str:pk>/participants/<str:client_id>/kick",
        RoomModerationViewSet.as_view({"post": "kick"}),
        name="room-kick",
    ),
    path(
        "api/rooms/<str:pk>/participants/<str:client_id>",
        RoomModerationViewSet.as_view({"patch": "participant"}),
        name="room-participant",
    ),
    path("api/rooms/<str:pk>/bans", RoomModerationViewSet.as_view({"get": "bans"}), name="room-bans"),
    path(
        "api/rooms/<str:pk>/bans/<str:agent_id>",
        RoomModerationViewSet.as_view({"delete": "lift_ban"}),
        name="room-ban",
    ),
]

urlpatterns = [
    *router.urls,
    path("api/ice-servers", IceServersView.as_view(), name="ice-servers"),
    *moderation,
    path("api/stats", StatsView.as_view(), name="stats"),
    path("api/events", EventListView.as_view(), name="events"),
    path("healthz", HealthView.as_view(), name="healthz"),
    path("readyz", ReadyView.as_view(), name="readyz"),
]
