"""Django app configuration for ``rooms``; also records the process start for ``uptimeSeconds``."""

from __future__ import annotations

import time

from django.apps import AppConfig

# Monotonic time at which this process loaded its apps: /api/stats reports uptime from it.
PROCESS_STARTED_MONOTONIC = time.monotonic()


class RoomsConfig(AppConfig):
    """The rooms app: persistence, tokens and REST for voice/video rooms."""

    name = "rooms"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Rooms"

    def ready(self) -> None:
        """Register the OpenAPI auth extension."""
        from rooms import schema  # noqa: F401 (registers AgentTokenScheme)
