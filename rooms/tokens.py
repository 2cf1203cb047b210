"""The only token code: agent tokens and join tokens, verified and minted (SPEC section 1).

Owns: decoding and validating every bearer token the server sees (REST and Socket.IO), and
mapping each failure to exactly one of ``missing_token`` / ``invalid_token`` /
``token_expired``. Signing and verification go through djangorestframework-simplejwt's
``TokenBackend`` (PyJWT underneath), built from ``settings.SIGNALING`` rather than from
``SIMPLE_JWT`` so a test's ``settings`` override of ``SIGNALING`` takes effect.

Never imports ``signaling``; never reads ``os.environ``.

Accepted shapes:
- agent token, as agent-link's Node ``jsonwebtoken`` mints it: ``{agentId, iat, exp}``
  (optionally ``"is_staff": true``); no ``token_type``, ``jti`` or ``user_id`` needed;
- join token: ``{agentId, roomId, scope: "room:join", jti, iat, exp}``.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt
from django.conf import settings
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import (
    TokenBackendError,
    TokenBackendExpiredToken,
)

__all__ = [
    "JOIN_SCOPE",
    "Identity",
    "TokenErrorCode",
    "TokenRejected",
    "authenticate_token",
    "mint_agent_token",
    "mint_join_token",
]

# SPEC section 1: HS256 only; `alg: none` and every other algorithm are rejected.
ALGORITHM = "HS256"
JOIN_SCOPE = "room:join"
AGENT_ID_MAX_CHARS = 128
ROOM_ID_MAX_CHARS = 40
JTI_MAX_CHARS = 128


class TokenErrorCode(StrEnum):
    """Machine codes for a rejected token (SPEC sections 1 and 3: ``connect_error`` messages)."""

    MISSING = "missing_token"
    INVALID = "invalid_token"
    EXPIRED = "token_expired"


class TokenRejected(Exception):
    """A token was missing, invalid or expired.

    Attributes:
        code: the SPEC code for the failure.
        message: human text safe to show the client.
    """

    def __init__(self, code: TokenErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token speaks for.

    Attributes:
        agent_id: the ``agentId`` claim.
        is_staff: True only for an agent token carrying ``"is_staff": true``.
        room_id: the room a join token admits to; None for agent tokens.
        jti: the join token's id; None for agent tokens.
    """

    agent_id: str
    is_staff: bool = False
    room_id: str | None = None
    jti: str | None = None

    @property
    def is_join_token(self) -> bool:
        """True when this identity came from a join token (scope ``room:join``)."""
        return self.room_id is not None


_backend_lock = threading.Lock()
_backend_cache: tuple[tuple[str, int], TokenBackend] | None = None


def _backend() -> TokenBackend:
    """Return the TokenBackend for the current secret and leeway, building it once per pair."""
    global _backend_cache
    config = settings.SIGNALING
    key = (config.jwt_secret, config.jwt_leeway_s)
    cached = _backend_cache
    if cached is not None and cached[0] == key:
        return cached[1]
    with _backend_lock:
        backend = TokenBackend(ALGORITHM, signing_key=config.jwt_secret, leeway=config.jwt_leeway_s)
        _backend_cache = (key, backend)
        return backend


def _invalid(message: str) -> TokenRejected:
    return TokenRejected(TokenErrorCode.INVALID, message)


def _bounded_string(payload: dict[str, Any], claim: str, max_chars: int) -> str:
    """Return ``payload[claim]`` if it is a non-empty string of at most ``max_chars`` that
    can be stored and sent: no NUL (PostgreSQL text refuses it) and no lone UTF-16
    surrogate (a JSON ``\\ud800`` escape: not encodable as UTF-8)."""
    value = payload.get(claim)
    if not isinstance(value, str) or not value or len(value) > max_chars:
        raise _invalid(f"token claim {claim!r} must be a string of 1-{max_chars} characters")
    if "\x00" in value or not (value.isascii() or _is_utf8_encodable(value)):
        raise _invalid(f"token claim {claim!r} must be Unicode text without NUL or lone surrogates")
    return value


def _is_utf8_encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# The registered time claims. PyJWT reads them with int(), so "9999999999" would pass;
# Node's jsonwebtoken (which mints agent-link's tokens) requires JSON numbers
# ("invalid exp value"), and so does RFC 7519's NumericDate.
TIME_CLAIMS = ("exp", "nbf", "iat")


def _check_time_claims(payload: dict[str, Any]) -> None:
    for claim in TIME_CLAIMS:
        if claim in payload and type(payload[claim]) not in (int, float):  # bool is no number here
            raise _invalid(f"token claim {claim!r} must be a number")


def authenticate_token(raw: str | None) -> Identity:
    """Verify an agent or join token and return who it speaks for.

    Args:
        raw: the encoded JWT, as the client sent it (None or "" when absent).

    Returns:
        The token's :class:`Identity`; ``room_id``/``jti`` are set for join tokens only.

    Raises:
        TokenRejected: ``missing_token`` (absent or empty), ``token_expired`` (valid
            signature, ``exp`` passed) or ``invalid_token`` (anything else wrong).
    """
    if raw is None or not isinstance(raw, str) or not raw.strip():
        raise TokenRejected(TokenErrorCode.MISSING, "no token was provided")
    try:
        # PyJWT checks the signature, `alg` against [HS256], and exp/nbf/iat with the leeway.
        payload = _backend().decode(raw.strip())
    except TokenBackendExpiredToken as exc:
        # PyJWT raises this after the signature check; `true` or "1" read as a past time
        # is a malformed claim, not an expiry.
        _check_time_claims(jwt.decode(raw.strip(), options={"verify_signature": False}))
        raise TokenRejected(TokenErrorCode.EXPIRED, "token has expired") from exc
    except TokenBackendError as exc:
        raise _invalid("token is invalid") from exc
    # A JSON array or string body is malformed, not a claim set.
    if not isinstance(payload, dict):
        raise _invalid("token payload is not a JSON object")
    # PyJWT validates `exp` only when present; SPEC section 1 requires it.
    if "exp" not in payload:
        raise _invalid("token has no 'exp' claim")
    _check_time_claims(payload)
    agent_id = _bounded_string(payload, "agentId", AGENT_ID_MAX_CHARS)
    scope = payload.get("scope")
    if scope is None:
        return Identity(agent_id=agent_id, is_staff=payload.get("is_staff") is True)
    if scope != JOIN_SCOPE:
        raise _invalid(f"token scope must be {JOIN_SCOPE!r}")
    return Identity(
        agent_id=agent_id,
        room_id=_bounded_string(payload, "roomId", ROOM_ID_MAX_CHARS),
        jti=_bounded_string(payload, "jti", JTI_MAX_CHARS),
    )


def mint_agent_token(agent_id: str, *, ttl_s: int = 3600, is_staff: bool = False) -> str:
    """Sign an agent token shaped like agent-link's (``agentId``, ``iat``, ``exp``).

    Args:
        agent_id: the ``agentId`` claim (1-128 characters).
        ttl_s: seconds until ``exp``.
        is_staff: add ``"is_staff": true`` (SPEC section 1: staff may close any room).
    """
    now = int(time.time())
    payload: dict[str, Any] = {"agentId": agent_id, "iat": now, "exp": now + ttl_s}
    if is_staff:
        payload["is_staff"] = True
    return _backend().encode(payload)


def mint_join_token(agent_id: str, room_id: str) -> tuple[str, int]:
    """Sign a join token admitting ``agent_id`` to ``room_id``.

    Returns:
        ``(token, expires_in_s)`` where ``expires_in_s`` is ``JOIN_TOKEN_TTL``
        (``exp - iat``, SPEC section 1).
    """
    ttl_s = settings.SIGNALING.join_token_ttl_s
    now = int(time.time())
    payload = {
        "agentId": agent_id,
        "roomId": room_id,
        "scope": JOIN_SCOPE,
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": now + ttl_s,
    }
    return _backend().encode(payload), ttl_s
