"""OpenAPI extensions for drf-spectacular: document the bearer agent token.

Imported from ``RoomsConfig.ready`` so the extension registers before a schema is built.
Never imports ``signaling``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class AgentTokenScheme(OpenApiAuthenticationExtension):
    """``AgentTokenAuthentication`` as an HTTP bearer (JWT) security scheme."""

    target_class = "rooms.authentication.AgentTokenAuthentication"
    name = "agentToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        """An HS256 JWT from agent-link: ``{agentId, iat, exp}``."""
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
