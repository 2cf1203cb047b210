"""`connected` carries the socket agent's `iceServers`, minted at connect time (SPEC section 8).

In-process websocket sessions; the TURN credential is recomputed here with the standard
library, so a wrong username, secret or encoding fails the test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import pytest

from rooms.tests.fixtures import ANY_TEXT
from rooms.tokens import mint_agent_token
from signaling.tests.integration.fixtures import Harness
from signaling.tests.schemas import assert_matches_schema

pytestmark = pytest.mark.django_db(transaction=True)

TURN_SECRET = "socket-test-turn-secret"


async def test_connected_carries_stun_and_turn_with_credentials_for_this_agent(
    signaling: Harness, signaling_config: Callable[..., None]
) -> None:
    # given
    signaling_config(
        stun_urls=("stun:127.0.0.1:3478",),
        turn_urls=("turn:127.0.0.1:3478?transport=udp",),
        turn_secret=TURN_SECRET,
        turn_ttl_s=120,
    )
    client = await signaling.ws()
    # when
    before = int(time.time())
    await client.send("40" + json.dumps({"token": mint_agent_token("agent-ice")}))
    accepted = await client.frame()
    name, payload = await client.event()
    after = int(time.time())
    # then
    assert isinstance(accepted, str) and accepted.startswith("40{")
    assert name == "connected"
    assert_matches_schema("connected", payload)
    client_id = json.loads(accepted[2:])["sid"]
    assert payload == {
        "clientId": client_id,
        "agentId": "agent-ice",
        "iceServers": [
            {"urls": ["stun:127.0.0.1:3478"]},
            {"urls": ["turn:127.0.0.1:3478?transport=udp"], "username": ANY_TEXT, "credential": ANY_TEXT},
        ],
    }
    turn = payload["iceServers"][1]
    expiry, _, agent_id = turn["username"].partition(":")
    assert agent_id == "agent-ice" and before + 120 <= int(expiry) <= after + 120
    digest = hmac.new(TURN_SECRET.encode(), turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(digest).decode()


async def test_connected_without_ice_configuration_carries_an_empty_list(signaling: Harness) -> None:
    client = await signaling.connect("agent-plain")  # asserts the whole `connected` payload
    assert client.agent_id == "agent-plain"
