"""Bearer agent-token authentication for the REST API (SPEC sections 1 and 2).

Owns: turning ``Authorization: Bearer <agent token>`` into an :class:`AgentPrincipal`.
Token verification itself lives in ``rooms.tokens`` (the only token code). Join tokens
never authenticate a REST call. ``authenticate_header`` makes every auth failure a 401
with ``WWW-Authenticate``, never a 403.

Never imports ``signaling``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from rooms.tokens import Identity, TokenErrorCode, TokenRejected, authenticate_token

AUTH_SCHEME = "Bearer"
AUTH_REALM = "api"


@dataclass(frozen=True, slots=True)
class AgentPrincipal:
    """The user-like object ``request.user`` is for a token-authenticated request."""

    agent_id: str
    is_staff: bool = False

    @property
    def pk(self) -> str:
        """The agent id (DRF and throttles look for ``pk``)."""
        return self.agent_id

    @property
    def id(self) -> str:
        """The agent id."""
        return self.agent_id

    @property
    def is_authenticated(self) -> bool:
        """Always True: only a verified token makes a principal."""
        return True

    @property
    def is_anonymous(self) -> bool:
        """Always False."""
        return False

    @property
    def is_active(self) -> bool:
        """Always True."""
        return True

    def __str__(self) -> str:
        return self.agent_id


def principal_agent_id(user: object) -> str | None:
    """Return the agent id a request acts as: the token's agent, or None for session users."""
    return user.agent_id if isinstance(user, AgentPrincipal) else None


class AgentTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <agent token>``; no header means "not this scheme"."""

    def authenticate(self, request: Request) -> tuple[AgentPrincipal, Identity] | None:
        """Return ``(principal, identity)``, or None when no bearer header was sent.

        Raises:
            AuthenticationFailed: code ``missing_token``, ``invalid_token`` or ``token_expired``.
        """
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != AUTH_SCHEME.lower().encode():
            return None
        if len(header) != 2:
            code = TokenErrorCode.MISSING if len(header) == 1 else TokenErrorCode.INVALID
            raise exceptions.AuthenticationFailed("Malformed Bearer authorization header.", code=code)
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("token is invalid", code=TokenErrorCode.INVALID) from exc
        try:
            identity = authenticate_token(raw)
        except TokenRejected as exc:
            raise exceptions.AuthenticationFailed(exc.message, code=exc.code) from exc
        if identity.is_join_token:
            raise exceptions.AuthenticationFailed(
                "join tokens cannot authenticate REST calls; use an agent token",
                code=TokenErrorCode.INVALID,
            )
        return AgentPrincipal(agent_id=identity.agent_id, is_staff=identity.is_staff), identity

    def authenticate_header(self, request: Request) -> str:
        """The ``WWW-Authenticate`` value that makes auth failures 401."""
        return f'{AUTH_SCHEME} realm="{AUTH_REALM}"'
