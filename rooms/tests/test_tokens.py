"""rooms.tokens: which tokens authenticate_token accepts, and the code of each rejection (SPEC section 1)."""

from __future__ import annotations

import base64
import functools
import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from rooms.tokens import (
    Identity,
    TokenErrorCode,
    TokenRejected,
    authenticate_token,
    mint_agent_token,
    mint_join_token,
)

NOW = int(time.time())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hand_signed(header: dict[str, Any], payload: bytes, secret: str) -> str:
    """A JWT signed with HMAC-SHA256 whatever its header claims (alg confusion, odd payloads)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(payload)}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _rejection(raw: str | None) -> tuple[TokenErrorCode, str]:
    with pytest.raises(TokenRejected) as caught:
        authenticate_token(raw)
    return caught.value.code, caught.value.message


def test_node_shaped_agent_token_is_accepted(agent_token: Callable[..., str]) -> None:
    # given a token with exactly agentId, iat, exp (no token_type, jti, user_id)
    token = agent_token("agent-fawzi")
    # when / then
    assert authenticate_token(token) == Identity(agent_id="agent-fawzi", is_staff=False, room_id=None, jti=None)


def test_agent_token_with_is_staff_true_is_staff(agent_token: Callable[..., str]) -> None:
    assert authenticate_token(agent_token("agent-ops", is_staff=True)) == Identity(agent_id="agent-ops", is_staff=True)


@pytest.mark.parametrize(("_case", "value"), [("string", "true"), ("int", 1), ("false", False)])
def test_is_staff_other_than_json_true_is_not_staff(agent_token: Callable[..., str], _case: str, value: Any) -> None:
    assert authenticate_token(agent_token("agent-x", is_staff=value)) == Identity(agent_id="agent-x", is_staff=False)


def test_agent_id_of_128_characters_is_accepted(agent_token: Callable[..., str]) -> None:
    assert authenticate_token(agent_token("a" * 128)).agent_id == "a" * 128


def test_minted_agent_token_round_trips_with_node_claims(jwt_secret: str) -> None:
    # when
    token = mint_agent_token("agent-fawzi", ttl_s=120)
    # then
    claims = jwt.decode(token, jwt_secret, algorithms=["HS256"])
    assert claims == {"agentId": "agent-fawzi", "iat": claims["iat"], "exp": claims["iat"] + 120}
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


def test_expired_token_with_bad_signature_is_invalid_not_expired(make_jwt: Callable[..., str]) -> None:
    token = make_jwt({"agentId": "agent-fawzi", "iat": NOW - 7200, "exp": NOW - 3600}, key="another-secret-" * 5)
    assert _rejection(token)[0] == TokenErrorCode.INVALID


def _rsa_private_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


VALID = {"agentId": "agent-fawzi", "iat": NOW, "exp": NOW + 3600}


@functools.cache
def _hostile_tokens(secret: str) -> list[tuple[str, str]]:
    """(case, token) pairs that must each be rejected as invalid_token."""
    plain = json.dumps(VALID).encode()
    return [
        ("alg_none", jwt.encode(VALID, None, algorithm="none")),
        ("alg_none_with_hmac_signature", _hand_signed({"alg": "none", "typ": "JWT"}, plain, secret)),
        ("hs512", jwt.encode(VALID, secret, algorithm="HS512")),
        ("hs384", jwt.encode(VALID, secret, algorithm="HS384")),
        ("rs256", jwt.encode(VALID, _rsa_private_key(), algorithm="RS256")),
        ("rs256_header_hmac_signed", _hand_signed({"alg": "RS256", "typ": "JWT"}, plain, secret)),
        ("bad_signature", jwt.encode(VALID, "not-the-server-secret-" * 3, algorithm="HS256")),
        ("tampered_payload", _tamper(jwt.encode(VALID, secret, algorithm="HS256"))),
        ("missing_exp", jwt.encode({"agentId": "agent-fawzi", "iat": NOW}, secret, algorithm="HS256")),
        ("exp_not_a_number", jwt.encode({**VALID, "exp": "tomorrow"}, secret, algorithm="HS256")),
        ("nbf_in_future", jwt.encode({**VALID, "nbf": NOW + 600}, secret, algorithm="HS256")),
        ("iat_in_future", jwt.encode({**VALID, "iat": NOW + 600}, secret, algorithm="HS256")),
        ("agent_id_missing", jwt.encode({"iat": NOW, "exp": NOW + 3600}, secret, algorithm="HS256")),
        ("agent_id_empty", jwt.encode({**VALID, "agentId": ""}, secret, algorithm="HS256")),
        ("agent_id_number", jwt.encode({**VALID, "agentId": 42}, secret, algorithm="HS256")),
        ("agent_id_null", jwt.encode({**VALID, "agentId": None}, secret, algorithm="HS256")),
        ("agent_id_list", jwt.encode({**VALID, "agentId": ["agent-fawzi"]}, secret, algorithm="HS256")),
        ("agent_id_129_chars", jwt.encode({**VALID, "agentId": "a" * 129}, secret, algorithm="HS256")),
        ("user_id_instead_of_agent_id", jwt.encode({"user_id": "agent-fawzi", "iat": NOW, "exp": NOW + 3600}, secret)),
        ("other_scope", jwt.encode({**VALID, "scope": "admin"}, secret, algorithm="HS256")),
        ("join_without_room_id", jwt.encode({**VALID, "scope": "room:join", "jti": "j1"}, secret)),
        ("join_without_jti", jwt.encode({**VALID, "scope": "room:join", "roomId": "r_1"}, secret)),
        ("join_with_empty_room_id", jwt.encode({**VALID, "scope": "room:join", "roomId": "", "jti": "j1"}, secret)),
        ("payload_is_array", _hand_signed({"alg": "HS256", "typ": "JWT"}, b"[1, 2]", secret)),
        ("payload_not_json", _hand_signed({"alg": "HS256", "typ": "JWT"}, b"not json", secret)),
        ("garbage", "garbage"),
        ("three_garbage_parts", "a.b.c"),
        ("two_parts", "eyJhbGciOiJIUzI1NiJ9.eyJhZ2VudElkIjoieCJ9"),
    ]


def _tamper(token: str) -> str:
    header, _payload, signature = token.split(".")
    forged = _b64(json.dumps({**VALID, "agentId": "agent-mallory"}).encode())
    return f"{header}.{forged}.{signature}"


HOSTILE_CASES = [case for case, _token in _hostile_tokens("case-names-only-" * 4)]


@pytest.mark.parametrize("_case", HOSTILE_CASES)
def test_hostile_token_is_invalid_token(jwt_secret: str, _case: str) -> None:
    # given
    token = dict(_hostile_tokens(jwt_secret))[_case]
    # when
    code, message = _rejection(token)
    # then
    assert code == TokenErrorCode.INVALID
    assert message


def test_iat_in_future_within_leeway_is_accepted(settings: Any, make_jwt: Callable[..., str]) -> None:
    settings.SIGNALING = dataclasses.replace(settings.SIGNALING, jwt_leeway_s=60)
    token = make_jwt({"agentId": "agent-fawzi", "iat": int(time.time()) + 30, "exp": int(time.time()) + 3600})
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
    assert [code.value for code in TokenErrorCode] == ["missing_token", "invalid_token", "token_expired"]
