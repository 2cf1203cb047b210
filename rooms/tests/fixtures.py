"""Shared fixtures for REST and token tests: real JWTs, API clients, rooms, the live layer.

Registered from the root ``conftest.py`` (``pytest_plugins``). Tokens are real HS256 JWTs
signed with the configured secret (or a hostile key/alg built with PyJWT), never a mocked
verifier. ``live`` is the real ``signaling.service.api``; a test that needs a particular
live answer (a full room, present participants) patches one function with ``monkeypatch``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import jwt
import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from rooms import services
from rooms.models import Room

# ISO 8601 UTC with milliseconds and Z, as JavaScript's Date.toISOString() writes it.
ISO_UTC_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ROOM_ID_RE = re.compile(r"^r_[A-Za-z0-9_-]{22}$")


class _Matches:
    """Equal to any string matching a regex: for whole-payload asserts with generated values."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(self.pattern.match(other))

    def __repr__(self) -> str:
        return f"<matching {self.pattern.pattern}>"


ANY_ISO_UTC = _Matches(ISO_UTC_RE)
ANY_ROOM_ID = _Matches(ROOM_ID_RE)
ANY_TEXT = _Matches(re.compile(r"^.+$", re.S))


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
        claims: dict[str, Any], *, key: str | None = None, algorithm: str = "HS256", headers: dict[str, Any] | None = None
    ) -> str:
        return jwt.encode(claims, jwt_secret if key is None else key, algorithm=algorithm, headers=headers)

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
        fields: dict[str, Any] = {"name": "My Voice Room", "room_type": "voice", "created_by": "agent-fawzi"}
        fields.update(overrides)
        return services.create_room(**fields)

    return create


@pytest.fixture
def live() -> ModuleType:
    """The real cluster-wide live view, ``signaling.service.api``."""
    from signaling.service import api

    return api
