"""ICE servers: the TURN REST credential, the ``iceServers`` shape, and their configuration (SPEC sections 6, 8).

Unit tier: no database, no event loop; time is passed in. The credential vector was computed
independently, once, with OpenSSL:
``printf '%s' '1700086400:agent-alice' | openssl dgst -sha1 -hmac 'north-wind-turn-secret' -binary | base64``.
"""

from __future__ import annotations

import pytest

from rooms.ice import build_ice_servers, turn_credential
from signaling_project.config import ConfigError, load_config

SECRET = "unit-test-secret-0123456789abcdef"
TURN_SECRET = "north-wind-turn-secret"
ISSUED_AT_S = 1_700_000_000
# openssl dgst -sha1 -hmac 'north-wind-turn-secret' of '1700086400:agent-alice', base64.
OPENSSL_CREDENTIAL = "ofxwzLB49F96N4/YRWKVpRkaKD4="


def test_turn_credential_matches_the_openssl_vector() -> None:
    assert turn_credential(TURN_SECRET, "1700086400:agent-alice") == OPENSSL_CREDENTIAL


def test_turn_credential_changes_with_the_secret_and_the_username() -> None:
    assert turn_credential("another-secret", "1700086400:agent-alice") != OPENSSL_CREDENTIAL
    assert turn_credential(TURN_SECRET, "1700086401:agent-alice") != OPENSSL_CREDENTIAL


def test_ice_servers_list_stun_then_turn_with_expiring_credentials() -> None:
    # when
    servers = build_ice_servers(
        stun_urls=("stun:stun.example.org:3478",),
        turn_urls=("turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"),
        turn_secret=TURN_SECRET,
        turn_ttl_s=86400,
        agent_id="agent-alice",
        now_s=ISSUED_AT_S + 0.9,
    )
    # then
    assert servers == [
        {"urls": ["stun:stun.example.org:3478"]},
        {
            "urls": ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"],
            "username": "1700086400:agent-alice",
            "credential": OPENSSL_CREDENTIAL,
        },
    ]


@pytest.mark.parametrize(
    ("_case", "stun", "turn", "expected"),
    [
        ("nothing configured", (), (), []),
        ("stun only", ("stun:a:3478", "stun:b:3478"), (), [{"urls": ["stun:a:3478", "stun:b:3478"]}]),
    ],
)
def test_ice_servers_without_turn_carry_no_credentials(
    _case: str, stun: tuple[str, ...], turn: tuple[str, ...], expected: list[dict[str, object]]
) -> None:
    servers = build_ice_servers(
        stun_urls=stun, turn_urls=turn, turn_secret=None, turn_ttl_s=60, agent_id="agent-a", now_s=ISSUED_AT_S
    )
    assert servers == expected


def test_ice_variables_default_to_unset_and_a_day() -> None:
    config = load_config({"JWT_SECRET": SECRET})
    assert (config.stun_urls, config.turn_urls, config.turn_secret, config.turn_ttl_s) == ((), (), None, 86400)


def test_ice_variables_are_parsed() -> None:
    # when
    config = load_config(
        {
            "JWT_SECRET": SECRET,
            "STUN_URLS": "stun:stun.example.org:3478, stun:127.0.0.1:3479",
            "TURN_URLS": "turn:127.0.0.1:3478?transport=udp,turns:turn.example.org:5349",
            "TURN_SECRET": TURN_SECRET,
            "TURN_TTL": "600",
        }
    )
    # then
    assert (config.stun_urls, config.turn_urls, config.turn_secret, config.turn_ttl_s) == (
        ("stun:stun.example.org:3478", "stun:127.0.0.1:3479"),
        ("turn:127.0.0.1:3478?transport=udp", "turns:turn.example.org:5349"),
        TURN_SECRET,
        600,
    )


@pytest.mark.parametrize(
    ("_case", "environ", "message"),
    [
        (
            "turn without secret",
            {"TURN_URLS": "turn:127.0.0.1:3478"},
            "TURN_URLS is set but TURN_SECRET is not: set the TURN server's static-auth-secret",
        ),
        (
            "turn url in stun",
            {"STUN_URLS": "turn:127.0.0.1:3478"},
            "STUN_URLS must be a comma-separated list of stun: or stuns: URIs, got 'turn:127.0.0.1:3478'",
        ),
        (
            "http url in turn",
            {"TURN_URLS": "http://turn.example.org", "TURN_SECRET": "s"},
            "TURN_URLS must be a comma-separated list of turn: or turns: URIs, got 'http://turn.example.org'",
        ),
        (
            "scheme without host",
            {"TURN_URLS": "turn:", "TURN_SECRET": "s"},
            "TURN_URLS must be a comma-separated list of turn: or turns: URIs, got 'turn:'",
        ),
        ("zero ttl", {"TURN_TTL": "0"}, "TURN_TTL must be a positive integer of seconds, got '0'"),
        ("negative ttl", {"TURN_TTL": "-5"}, "TURN_TTL must be a positive integer of seconds, got '-5'"),
        ("word ttl", {"TURN_TTL": "day"}, "TURN_TTL must be a positive integer of seconds, got 'day'"),
    ],
)
def test_bad_ice_variable_is_one_line_naming_it(_case: str, environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"JWT_SECRET": SECRET, **environ})
    assert str(caught.value) == message
