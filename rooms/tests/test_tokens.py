"""rooms.tokens: which tokens authenticate_token accepts, and the code of each rejection (SPEC section 1)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from rooms.tests.fixtures import HOSTILE_TOKEN_CASES, hostile_tokens
from rooms.tokens import (
    Identity,
    TokenErrorCode,
    TokenRejected,
    authenticate_token,
    mint_agent_token,
    mint_join_token,
)

NOW = int(time.time())


def _rejection(raw: str | None) -> tuple[TokenErrorCode, str]:
    with pytest.raises(TokenRejected) as caught:
        authenticate_token(raw)
    return caught.value.code, caught.value.message


def test_node_shaped_agent_token_is_accepted(agent_token: Callable[..., str]) -> None:
    # given a token with exactly agentId, iat, exp (no token_type, jti, user_id)
    token = agent_token("agent-fawzi")
    # when / then
    assert authenticate_token(token) == Identity(agent_id="agent-fawzi", is_staff=False, room_id=None, jti=None)


def test_agent_token_with_is_staff_true_is_staff(
    agent_token: Callable[..., str],
) -> None:
    assert authenticate_token(agent_token("agent-ops", is_staff=True)) == Identity(agent_id="agent-ops", is_staff=True)


@pytest.mark.parametrize(("_case", "value"), [("string", "true"), ("int", 1), ("false", False)])
def test_is_staff_other_than_json_true_is_not_staff(agent_token: Callable[..., str], _case: str, value: Any) -> None:
    assert authenticate_token(agent_token("agent-x", is_staff=value)) == Identity(agent_id="agent-x", is_staff=False)


def test_agent_id_of_128_characters_is_accepted(
    agent_token: Callable[..., str],
) -> None:
    assert authenticate_token(agent_token("a" * 128)).agent_id == "a" * 128


def test_minted_agent_token_round_trips_with_node_claims(jwt_secret: str) -> None:
    # when
    token = mint_agent_token("agent-fawzi", ttl_s=120)
    # then
    claims = jwt.decode(token, jwt_secret, algorithms=["HS256"])
    assert claims == {
        "agentId": "agent-fawzi",
        "iat": claims["iat"],
        "exp": claims["iat"] + 120,
    }
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    assert authenticate_token(token) == Identity(agent_id="agent-fawzi")


def test_minted_staff_token_is_staff() -> None:
    assert authenticate_token(mint_agent_token("agent-ops", is_staff=True)) == Identity("agent-ops", is_staff=True)


def test_join_token_carries_room_scope_jti_and_ttl(jwt_secret: str, settings: Any) -> None:
    # given
    settings.SIGNALING = dataclasses.replace(settings.SIGNALING, join_token_ttl_s=300)
    # when
    token, expires_in = mint_join_token("agent-fawzi", "r_room1")
    # then
    claims = jwt.decode(token, jwt_secret, algorithms=["HS256"])
    assert expires_in == 300
    assert claims == {
        "agentId": "agent-fawzi",
        "roomId": "r_room1",
        "scope": "room:join",
        "jti": claims["jti"],
        "iat": claims["iat"],
        "exp": claims["iat"] + 300,
    }
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert authenticate_token(token) == Identity(agent_id="agent-fawzi", room_id="r_room1", jti=claims["jti"])


def test_join_token_ids_are_unique() -> None:
    first, _ = mint_join_token("agent-fawzi", "r_room1")
    second, _ = mint_join_token("agent-fawzi", "r_room1")
    assert authenticate_token(first).jti != authenticate_token(second).jti


def test_join_token_ttl_follows_settings(settings: Any) -> None:
    settings.SIGNALING = dataclasses.replace(settings.SIGNALING, join_token_ttl_s=42)
    token, expires_in = mint_join_token("agent-fawzi", "r_room1")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (expires_in, claims["exp"] - claims["iat"]) == (42, 42)


@pytest.mark.parametrize(("_case", "raw"), [("none", None), ("empty", ""), ("blank", "   ")])
def test_absent_token_is_missing_token(_case: str, raw: str | None) -> None:
    assert _rejection(raw) == (TokenErrorCode.MISSING, "no token was provided")


def test_expired_token_is_token_expired(make_jwt: Callable[..., str]) -> None:
    token = make_jwt({"agentId": "agent-fawzi", "iat": NOW - 7200, "exp": NOW - 3600})
    assert _rejection(token) == (TokenErrorCode.EXPIRED, "token has expired")


def test_expired_token_with_bad_signature_is_invalid_not_expired(
    make_jwt: Callable[..., str],
) -> None:
    token = make_jwt(
        {"agentId": "agent-fawzi", "iat": NOW - 7200, "exp": NOW - 3600},
        key="another-secret-" * 5,
    )
    assert _rejection(token)[0] == TokenErrorCode.INVALID


@pytest.mark.parametrize("_case", HOSTILE_TOKEN_CASES)
def test_hostile_token_is_invalid_token(jwt_secret: str, _case: str) -> None:
    # given
    token = hostile_tokens(jwt_secret)[_case]
    # when
    code, message = _rejection(token)
    # then
    assert code == TokenErrorCode.INVALID
    assert message


def test_iat_in_future_within_leeway_is_accepted(settings: Any, make_jwt: Callable[..., str]) -> None:
    settings.SIGNALING = dataclasses.replace(settings.SIGNALING, jwt_leeway_s=60)
    token = make_jwt(
        {
            "agentId": "agent-fawzi",
            "iat": int(time.time()) + 30,
            "exp": int(time.time()) + 3600,
        }
    )
    assert authenticate_token(token) == Identity(agent_id="agent-fawzi")


def test_expired_within_leeway_is_accepted_and_beyond_is_expired(settings: Any, make_jwt: Callable[..., str]) -> None:
    # given a leeway of 60 s
    settings.SIGNALING = dataclasses.replace(settings.SIGNALING, jwt_leeway_s=60)
    now = int(time.time())
    # when / then
    assert authenticate_token(make_jwt({"agentId": "a", "iat": now - 100, "exp": now - 30})) == Identity("a")
    assert _rejection(make_jwt({"agentId": "a", "iat": now - 200, "exp": now - 120}))[0] == TokenErrorCode.EXPIRED


def test_changing_the_secret_in_settings_takes_effect(settings: Any, agent_token: Callable[..., str]) -> None:
    # given a token signed with the current secret
    token = agent_token("agent-fawzi")
    # when the secret changes
    settings.SIGNALING = dataclasses.replace(settings.SIGNALING, jwt_secret="a-rotated-secret-" * 4)
    # then the old token is refused and new tokens use the new secret
    assert _rejection(token)[0] == TokenErrorCode.INVALID
    assert authenticate_token(mint_agent_token("agent-fawzi")) == Identity("agent-fawzi")


def test_token_error_codes_are_the_spec_strings() -> None:
    assert [code.value for code in TokenErrorCode] == [
        "missing_token",
        "invalid_token",
        "token_expired",
    ]
