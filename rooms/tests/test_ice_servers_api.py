"""ICE servers over REST: ``GET /api/ice-servers`` and the join-token response (SPEC section 8).

Credentials are checked against an HMAC computed here with the standard library, not with
``rooms.ice``; coturn itself accepts them in ``signaling/tests/e2e/test_coturn.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from rooms.models import Room
from rooms.tests.fixtures import ANY_TEXT

pytestmark = pytest.mark.django_db

TURN_SECRET = "rest-test-turn-secret"
STUN_URLS = ("stun:stun.example.org:3478",)
TURN_URLS = ("turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349")


@pytest.fixture
def with_turn(signaling_config: Callable[..., None]) -> None:
    signaling_config(stun_urls=STUN_URLS, turn_urls=TURN_URLS, turn_secret=TURN_SECRET, turn_ttl_s=600)


def expected_credential(username: str) -> str:
    return base64.b64encode(hmac.new(TURN_SECRET.encode(), username.encode(), hashlib.sha1).digest()).decode()


def assert_minted_for(ice_servers: Any, agent_id: str, *, issued_between: tuple[int, int], ttl_s: int) -> None:
    """``ice_servers`` is [STUN entry, TURN entry] with credentials for ``agent_id``."""
    assert ice_servers == [
        {"urls": list(STUN_URLS)},
        {"urls": list(TURN_URLS), "username": ANY_TEXT, "credential": ANY_TEXT},
    ]
    turn = ice_servers[1]
    expiry, _, named_agent = turn["username"].partition(":")
    assert named_agent == agent_id
    assert issued_between[0] + ttl_s <= int(expiry) <= issued_between[1] + ttl_s
    assert turn["credential"] == expected_credential(turn["username"])


def test_ice_servers_answers_fresh_credentials_for_the_token_agent(
    with_turn: None, client_as: Callable[..., APIClient]
) -> None:
    # when
    before = int(time.time())
    response = client_as("agent-fawzi").get("/api/ice-servers")
    after = int(time.time())
    # then
    assert response.status_code == 200
    body = response.json()
    assert sorted(body) == ["iceServers", "ttl"] and body["ttl"] == 600
    assert_minted_for(body["iceServers"], "agent-fawzi", issued_between=(before, after), ttl_s=600)


def test_ice_servers_without_stun_or_turn_is_an_empty_list_and_the_default_ttl(
    client_as: Callable[..., APIClient],
) -> None:
    response = client_as("agent-fawzi").get("/api/ice-servers")
    assert (response.status_code, response.json()) == (200, {"iceServers": [], "ttl": 86400})


@pytest.mark.parametrize(
    ("_case", "authorization", "code"),
    [
        ("no token", None, "missing_token"),
        ("not a jwt", "Bearer not-a-token", "invalid_token"),
    ],
)
def test_ice_servers_without_a_valid_token_is_401_and_mints_nothing(
    with_turn: None, _case: str, authorization: str | None, code: str
) -> None:
    # given
    client = APIClient()
    if authorization:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    # when
    response = client.get("/api/ice-servers")
    # then
    assert response.status_code == 401
    assert response.json() == {"detail": ANY_TEXT, "code": code}


def test_ice_servers_refuses_other_methods_with_json_405(with_turn: None, client_as: Callable[..., APIClient]) -> None:
    response = client_as("agent-fawzi").post("/api/ice-servers", {}, format="json")
    assert (response.status_code, response.json()["code"]) == (405, "method_not_allowed")


def test_join_token_response_carries_ice_servers_for_the_joining_agent(
    with_turn: None, client_as: Callable[..., APIClient], make_room: Callable[..., Room]
) -> None:
    # given
    room = make_room(created_by="agent-owner")
    # when
    before = int(time.time())
    response = client_as("agent-guest").post(f"/api/rooms/{room.id}/join")
    after = int(time.time())
    # then
    assert response.status_code == 200
    body = response.json()
    assert sorted(body) == ["expiresIn", "iceServers", "roomId", "token"]
    assert_minted_for(body["iceServers"], "agent-guest", issued_between=(before, after), ttl_s=600)


def test_openapi_documents_the_ice_servers_endpoint_and_fields(api_client: APIClient) -> None:
    # when
    schema = api_client.get("/api/schema", {"format": "json"}).json()
    # then
    operation = schema["paths"]["/api/ice-servers"]["get"]
    assert sorted(operation["responses"]) == ["200", "401"]
    assert operation["security"] == [{"agentToken": []}]
    components = schema["components"]["schemas"]
    assert components["IceServers"]["required"] == ["iceServers", "ttl"]
    assert components["IceServer"]["required"] == ["urls"]
    assert sorted(components["IceServer"]["properties"]) == ["credential", "urls", "username"]
    assert "iceServers" in components["JoinToken"]["required"]
