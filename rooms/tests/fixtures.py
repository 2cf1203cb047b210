"""Shared fixtures for REST and token tests: real JWTs, API clients, rooms, the live layer.

Registered from the root ``conftest.py`` (``pytest_plugins``). Tokens are real HS256 JWTs
signed with the configured secret (or a hostile key/alg built with PyJWT), never a mocked
verifier. ``live`` is the real ``signaling.service.api``; a test that needs a particular
live answer (a full room, present participants) patches one function with ``monkeypatch``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from rooms import services
from rooms.models import Room

# ISO 8601 UTC with milliseconds and Z, as JavaScript's Date.toISOString() writes it.
ISO_UTC_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ROOM_ID_RE = re.compile(r"^r_[A-Za-z0-9_-]{22}$")


class Matches:
    """Equal to any string matching a regex: for whole-payload asserts with generated values."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(self.pattern.match(other))

    def __repr__(self) -> str:
        return f"<matching {self.pattern.pattern}>"


ANY_ISO_UTC = Matches(ISO_UTC_RE)
ANY_ROOM_ID = Matches(ROOM_ID_RE)
ANY_TEXT = Matches(re.compile(r"^.+$", re.DOTALL))


# --- hostile tokens (built with PyJWT or by hand) ----------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hand_signed(header: dict[str, Any], payload: bytes, secret: str) -> str:
    """A JWT signed with HMAC-SHA256 whatever its header claims (alg confusion, odd payloads)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(payload)}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _rsa_private_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


NOW = int(time.time())
VALID = {"agentId": "agent-fawzi", "iat": NOW, "exp": NOW + 3600}


@functools.cache
def hostile_tokens(secret: str) -> dict[str, str]:
    """``{case: token}``: tokens that must each be rejected as ``invalid_token`` (SPEC section 1)."""
    plain = json.dumps(VALID).encode()
    return {
        "alg_none": jwt.encode(VALID, None, algorithm="none"),
        "alg_none_with_hmac_signature": _hand_signed({"alg": "none", "typ": "JWT"}, plain, secret),
        "hs512": jwt.encode(VALID, secret, algorithm="HS512"),
        "hs384": jwt.encode(VALID, secret, algorithm="HS384"),
        "rs256": jwt.encode(VALID, _rsa_private_key(), algorithm="RS256"),
        "rs256_header_hmac_signed": _hand_signed({"alg": "RS256", "typ": "JWT"}, plain, secret),
        "bad_signature": jwt.encode(VALID, "not-the-server-secret-" * 3, algorithm="HS256"),
        "tampered_payload": _tamper(jwt.encode(VALID, secret, algorithm="HS256")),
        "missing_exp": jwt.encode({"agentId": "agent-fawzi", "iat": NOW}, secret, algorithm="HS256"),
        "exp_not_a_number": jwt.encode({**VALID, "exp": "tomorrow"}, secret, algorithm="HS256"),
        # PyJWT reads time claims with int(); Node's jsonwebtoken refuses a non-number.
        "exp_numeric_string": jwt.encode({**VALID, "exp": str(NOW + 3600)}, secret, algorithm="HS256"),
        "nbf_numeric_string": jwt.encode({**VALID, "nbf": str(NOW - 60)}, secret, algorithm="HS256"),
        "iat_numeric_string": jwt.encode({**VALID, "iat": str(NOW)}, secret, algorithm="HS256"),
        "exp_true": jwt.encode({**VALID, "exp": True}, secret, algorithm="HS256"),
        "nbf_in_future": jwt.encode({**VALID, "nbf": NOW + 600}, secret, algorithm="HS256"),
        "iat_in_future": jwt.encode({**VALID, "iat": NOW + 600}, secret, algorithm="HS256"),
        "agent_id_missing": jwt.encode({"iat": NOW, "exp": NOW + 3600}, secret, algorithm="HS256"),
        "agent_id_empty": jwt.encode({**VALID, "agentId": ""}, secret, algorithm="HS256"),
        "agent_id_number": jwt.encode({**VALID, "agentId": 42}, secret, algorithm="HS256"),
        "agent_id_null": jwt.encode({**VALID, "agentId": None}, secret, algorithm="HS256"),
        "agent_id_list": jwt.encode({**VALID, "agentId": ["agent-fawzi"]}, secret, algorithm="HS256"),
        "agent_id_129_chars": jwt.encode({**VALID, "agentId": "a" * 129}, secret, algorithm="HS256"),
        # Not storable: a lone UTF-16 surrogate (no UTF-8 form) and NUL (PostgreSQL text).
        "agent_id_lone_surrogate": jwt.encode({**VALID, "agentId": "agent-\ud800"}, secret, algorithm="HS256"),
        "agent_id_with_nul": jwt.encode({**VALID, "agentId": "agent\x00x"}, secret, algorithm="HS256"),
        "user_id_instead_of_agent_id": jwt.encode({"user_id": "agent-fawzi", "iat": NOW, "exp": NOW + 3600}, secret),
        "other_scope": jwt.encode({**VALID, "scope": "admin"}, secret, algorithm="HS256"),
        "join_without_room_id": jwt.encode({**VALID, "scope": "room:join", "jti": "j1"}, secret),
        "join_without_jti": jwt.encode({**VALID, "scope": "room:join", "roomId": "r_1"}, secret),
        "join_with_empty_room_id": jwt.encode({**VALID, "scope": "room:join", "roomId": "", "jti": "j1"}, secret),
        "payload_is_array": _hand_signed({"alg": "HS256", "typ": "JWT"}, b"[1, 2]", secret),
        "payload_not_json": _hand_signed({"alg": "HS256", "typ": "JWT"}, b"not json", secret),
        "garbage": "garbage",
        "three_garbage_parts": "a.b.c",
        "two_parts": "eyJhbGciOiJIUzI1NiJ9.eyJhZ2VudElkIjoieCJ9",
    }


def _tamper(token: str) -> str:
    header, _payload, signature = token.split(".")
    forged = _b64(json.dumps({**VALID, "agentId": "agent-mallory"}).encode())
    return f"{header}.{forged}.{signature}"


HOSTILE_TOKEN_CASES = list(hostile_tokens("case-names-only-" * 4))


@pytest.fixture
def jwt_secret() -> str:
    """The secret the server verifies with."""
    return str(django_settings.SIGNALING.jwt_secret)


@pytest.fixture
def make_jwt(jwt_secret: str) -> Callable[..., str]:
    """Build any JWT with PyJWT: ``make_jwt(claims, key=..., algorithm=..., headers=...)``.

    ``claims`` is used as given (no defaults), so hostile shapes are easy to express.
    """

    def build(
        claims: dict[str, Any],
        *,
        key: str | None = None,
        algorithm: str = "HS256",
        headers: dict[str, Any] | None = None,
    ) -> str:
        return jwt.encode(
            claims,
            jwt_secret if key is None else key,
            algorithm=algorithm,
            headers=headers,
        )

    return build


@pytest.fixture
def agent_token(make_jwt: Callable[..., str]) -> Callable[..., str]:
    """Mint the Node shape ``{agentId, iat, exp}`` (plus ``extra`` claims) for ``agent_id``."""

    def mint(agent_id: str = "agent-fawzi", *, ttl_s: int = 3600, **extra: Any) -> str:
        now = int(time.time())
        return make_jwt({"agentId": agent_id, "iat": now, "exp": now + ttl_s, **extra})

    return mint


@pytest.fixture
def api_client() -> APIClient:
    """An anonymous DRF test client."""
    return APIClient()


@pytest.fixture
def client_as(agent_token: Callable[..., str]) -> Callable[..., APIClient]:
    """``client_as("agent-x", is_staff=True)``: an APIClient sending that agent's Bearer token."""

    def build(agent_id: str = "agent-fawzi", **extra: Any) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {agent_token(agent_id, **extra)}")
        return client

    return build


@pytest.fixture
def make_room(db: None) -> Callable[..., Room]:
    """Create a room through ``rooms.services.create_room`` (defaults: a voice room of agent-fawzi)."""

    def create(**overrides: Any) -> Room:
        fields: dict[str, Any] = {
            "name": "My Voice Room",
            "room_type": "voice",
            "created_by": "agent-fawzi",
        }
        fields.update(overrides)
        return services.create_room(**fields)

    return create


@pytest.fixture
def live() -> ModuleType:
    """The real cluster-wide live view, ``signaling.service.api``."""
    from signaling.service import api

    return api


def room_json(room: Room, **overrides: Any) -> dict[str, Any]:
    """The SPEC section 2 representation of an open ``room`` with no participants, then ``overrides``."""
    from rooms.serializers import iso_utc

    body: dict[str, Any] = {
        "id": room.id,
        "name": room.name,
        "type": room.type,
        "settings": {
            "muteOnEntry": room.mute_on_entry,
            "allowRecording": room.allow_recording,
            "maxDuration": room.max_duration_min,
            "maxParticipants": room.max_participants,
            "duplicateIdentity": room.duplicate_identity,
        },
        "createdBy": room.created_by,
        "createdAt": iso_utc(room.created_at),
        "participantCount": 0,
        "closed": False,
    }
    body.update(overrides)
    return body


@pytest.fixture
def announced(live: ModuleType, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Record ``live.room_closed`` calls (the REST layer makes them after commit)."""
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(live, "room_closed", lambda room_id, reason: calls.append((room_id, reason)))
    return calls
