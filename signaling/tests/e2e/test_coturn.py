"""Credentials the server mints are accepted by a real coturn; wrong ones are refused (SPEC section 8).

A real daphne configured with ``TURN_URLS``/``TURN_SECRET`` hands out ``iceServers`` (REST and the
socket's ``connected``); a real ``turnserver`` started with the same ``--static-auth-secret``
(``coturn_fixtures``) is asked for a UDP relay allocation with them through a small RFC 5766
client (``turn_client``). Refusals are coturn's own 401 answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

pytest.register_assert_rewrite("signaling.tests.e2e.coturn_fixtures")

from rooms.ice import build_ice_servers  # noqa: E402
from signaling.tests.e2e.coturn_fixtures import Coturn  # noqa: E402
from signaling.tests.e2e.turn_client import AllocateResult, TurnClient  # noqa: E402
from signaling.tests.fixtures import LiveServer  # noqa: E402

pytestmark = pytest.mark.e2e
pytest_plugins = ["signaling.tests.e2e.coturn_fixtures"]

TURN_SECRET = "coturn-e2e-shared-secret-0123456789"
OTHER_SECRET = "some-other-deployment-secret-98765"
UNAUTHORIZED = 401


def allocate(turn: Coturn, ice_servers: list[dict[str, Any]]) -> AllocateResult:
    """Allocate on ``turn`` with the TURN entry of ``ice_servers``."""
    (entry,) = [server for server in ice_servers if "credential" in server]
    assert entry["urls"] == [turn.turn_url]
    client = TurnClient("127.0.0.1", turn.port)
    try:
        return client.allocate(entry["username"], entry["credential"])
    finally:
        client.close()


def signaling_with_turn(live_servers: Callable[..., list[LiveServer]], turn: Coturn, secret: str) -> LiveServer:
    (server,) = live_servers(env={"TURN_URLS": turn.turn_url, "TURN_SECRET": secret, "TURN_TTL": "600"})
    return server


def test_coturn_grants_a_relay_for_credentials_from_get_ice_servers(
    coturn: Callable[[str], Coturn], live_servers: Callable[..., list[LiveServer]]
) -> None:
    # given
    turn = coturn(TURN_SECRET)
    server = signaling_with_turn(live_servers, turn, TURN_SECRET)
    # when
    status, body = server.request("GET", "/api/ice-servers", token=server.mint("agent-alice"))
    result = allocate(turn, body["iceServers"])
    # then
    assert (status, body["ttl"]) == (200, 600)
    assert (result.is_success, result.error_code) == (True, None), turn.log_text()[-2000:]
    assert result.relayed_address is not None and result.relayed_address[0] == "127.0.0.1"


async def test_coturn_grants_a_relay_for_credentials_from_the_connected_event(
    coturn: Callable[[str], Coturn], live_servers: Callable[..., list[LiveServer]], sio_client: Any
) -> None:
    # given
    turn = coturn(TURN_SECRET)
    server = signaling_with_turn(live_servers, turn, TURN_SECRET)
    client = sio_client()
    # when
    connected = await client.connect_as(server, "agent-bob")
    result = allocate(turn, connected["iceServers"])
    # then
    assert connected["iceServers"][0]["username"].endswith(":agent-bob")
    assert result.is_success, turn.log_text()[-2000:]


def test_coturn_refuses_credentials_minted_with_another_secret(
    coturn: Callable[[str], Coturn], live_servers: Callable[..., list[LiveServer]]
) -> None:
    # given: the signaling server and coturn do not share the secret
    turn = coturn(TURN_SECRET)
    server = signaling_with_turn(live_servers, turn, OTHER_SECRET)
    # when
    status, body = server.request("GET", "/api/ice-servers", token=server.mint("agent-mallory"))
    result = allocate(turn, body["iceServers"])
    # then
    assert status == 200
    assert result == AllocateResult(is_success=False, error_code=UNAUTHORIZED, relayed_address=None)


@pytest.mark.parametrize(
    ("_case", "tamper"),
    [
        ("wrong password", lambda entry: {**entry, "credential": "d3JvbmctcGFzc3dvcmQ="}),
        ("other agent in username", lambda entry: {**entry, "username": entry["username"] + "x"}),
    ],
)
def test_coturn_refuses_a_tampered_credential(
    coturn: Callable[[str], Coturn], _case: str, tamper: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    # given
    turn = coturn(TURN_SECRET)
    (entry,) = build_ice_servers(
        stun_urls=(),
        turn_urls=(turn.turn_url,),
        turn_secret=TURN_SECRET,
        turn_ttl_s=600,
        agent_id="agent-eve",
        now_s=time.time(),
    )
    # when
    genuine = allocate(turn, [entry])
    tampered = allocate(turn, [tamper(entry)])
    # then: the same server accepts the genuine pair and refuses the tampered one
    assert genuine.is_success
    assert tampered == AllocateResult(is_success=False, error_code=UNAUTHORIZED, relayed_address=None)


def test_coturn_refuses_expired_credentials(coturn: Callable[[str], Coturn]) -> None:
    # given: minted correctly, but their expiry (issue time + TTL) is an hour ago
    turn = coturn(TURN_SECRET)
    ice_servers = build_ice_servers(
        stun_urls=(),
        turn_urls=(turn.turn_url,),
        turn_secret=TURN_SECRET,
        turn_ttl_s=600,
        agent_id="agent-late",
        now_s=time.time() - 4200,
    )
    # when
    result = allocate(turn, ice_servers)
    # then
    assert result == AllocateResult(is_success=False, error_code=UNAUTHORIZED, relayed_address=None)
