"""URL routes of the rooms app (SPEC section 2): no trailing slashes, as the seed had."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from rooms.events_views import EventListView
from rooms.views import HealthView, ReadyView, RoomViewSet, StatsView

router = SimpleRouter(trailing_slash=False)
router.register("api/rooms", RoomViewSet, basename="room")

urlpatterns = [
    *router.urls,
    path("api/stats", StatsView.as_view(), name="stats"),
    path("api/events", EventListView.as_view(), name="events"),
    path("healthz", HealthView.as_view(), name="healthz"),
    path("readyz", ReadyView.as_view(), name="readyz"),
]
