"""URL routes of the rooms app (SPEC section 2): no trailing slashes, as the seed had."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from rooms.views import HealthView, IceServersView, ReadyView, RoomViewSet, StatsView

router = SimpleRouter(trailing_slash=False)
router.register("api/rooms", RoomViewSet, basename="room")

urlpatterns = [
    *router.urls,
    path("api/ice-servers", IceServersView.as_view(), name="ice-servers"),
    path("api/stats", StatsView.as_view(), name="stats"),
    path("healthz", HealthView.as_view(), name="healthz"),
    path("readyz", ReadyView.as_view(), name="readyz"),
]
