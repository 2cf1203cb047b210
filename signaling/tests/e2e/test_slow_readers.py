"""A client that stops reading is cut off at MAX_BUFFERED_BYTES; everyone else is served (issue 11).

Real daphne and uvicorn processes; the slow clients (``slow_clients.py``) complete their
handshake and join, then stop reading while answering pings blindly. A python-socketio
sender relays SDP-sized offers (60 kB) to them and to a bystander that reads normally. The
server must close each slow connection as a lost transport (its room gets ``user_left``,
``disconnected``), log it, and keep relaying to the bystander: every offer sent to it arrives.
Memory figures are measured by ``python -m bench.slow_readers`` (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from signaling.tests.e2e.slow_clients import SlowPollingReader, SlowWebsocketReader, close_all
from signaling.tests.fixtures import PATIENT_HEARTBEAT, LiveServer, SioClient

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SDP = "v=0\r\na=x-filler:" + "x" * 60_000  # under MAX_MESSAGE_BYTES (65536)
ENV = {**PATIENT_HEARTBEAT, "MAX_PARTICIPANTS": "12"}  # MAX_BUFFERED_BYTES: its 2 MB default
MAX_ROUNDS = 2000  # 2000 x 60 kB = 120 MB per slow client: far past the bound plus kernel buffers
PACE_S = 0.012  # under RATE_LIMIT (200 events/s) with two sends a round
SLOW_READER_LOG = "bytes waited for a client that does not read (MAX_BUFFERED_BYTES 2000000)"


async def joined_client(server: LiveServer, sio_client: Any, agent_id: str, room_id: str) -> SioClient:
    client = sio_client()
    await client.connect_as(server, agent_id, transports=["websocket"])
    assert (await client.join(room_id))["ok"] is True
    return client


async def relay_until_gone(
    sender: SioClient, bystander: SioClient, slow_ids: set[str], *, broadcast: bool = False
) -> tuple[int, list[dict[str, Any]]]:
    """Relay offers to the slow clients (``to`` each, or one broadcast) and to the bystander
    until the bystander has heard every slow client leave; returns (offers sent that the
    bystander must get, the ``user_left`` payloads)."""
    lefts: list[dict[str, Any]] = []
    for owed in range(1, MAX_ROUNDS + 1):
        if broadcast:
            await sender.emit("offer", {"sdp": SDP})
        else:
            for slow_id in slow_ids - {left["clientId"] for left in lefts}:
                await sender.emit("offer", {"to": slow_id, "sdp": SDP})
            await sender.emit("offer", {"to": bystander.client_id, "sdp": SDP})
        while not bystander.queues["user_left"].empty():
            lefts.append(await bystander.next("user_left"))
        if {left["clientId"] for left in lefts} >= slow_ids:
            return owed, lefts
        await asyncio.sleep(PACE_S)
    pytest.fail(f"after {MAX_ROUNDS} rounds only {len(lefts)} of {len(slow_ids)} slow clients were cut off")


async def assert_bystander_served(sender: SioClient, bystander: SioClient, owed: int) -> None:
    """Every offer owed arrived, in full, and relaying goes on."""
    for _ in range(owed):
        offer = await bystander.next("offer", timeout=10)
        assert (offer["from"], offer["sdp"]) == (sender.client_id, SDP)
    assert await sender.call("offer", {"to": bystander.client_id, "sdp": "v=0"}) == {"ok": True}
    assert (await bystander.next("offer"))["sdp"] == "v=0"


@pytest.mark.parametrize("_case", ["daphne", "uvicorn"])
async def test_websocket_client_that_stops_reading_is_cut_off_and_the_room_goes_on(
    _case: str, live_servers: Any, sio_client: Any
) -> None:
    # given: a sender, a bystander and a websocket client that stopped reading, in one room
    (server,) = live_servers(server=_case, env=ENV)
    room_id = (await server.acreate_room())["id"]
    sender = await joined_client(server, sio_client, "agent-sender", room_id)
    bystander = await joined_client(server, sio_client, "agent-bystander", room_id)
    slow = await SlowWebsocketReader.join(server, server.mint("agent-slow"), room_id)
    try:
        # when: the sender relays 60 kB offers to it and to the bystander
        owed, lefts = await relay_until_gone(sender, bystander, {slow.client_id})
        # then: the room is told it left, as a lost transport; its connection is gone
        assert lefts == [
            {"roomId": room_id, "clientId": slow.client_id, "agentId": "agent-slow", "reason": "disconnected"}
        ]
        await slow.wait_ended_by_server(timeout=15)
        await assert_bystander_served(sender, bystander, owed)
        status, room = await server.aget(f"/api/rooms/{room_id}")
        assert status == 200
        assert {p["clientId"] for p in room["participants"]} == {sender.client_id, bystander.client_id}
        assert SLOW_READER_LOG in server.stderr_text()
    finally:
        await close_all([slow])


async def test_polling_client_that_never_gets_is_cut_off_and_the_room_goes_on(
    live_servers: Any, sio_client: Any
) -> None:
    # given: a polling client that joined, then never GETs again (it POSTs pongs)
    (server,) = live_servers(env=ENV)
    room_id = (await server.acreate_room())["id"]
    sender = await joined_client(server, sio_client, "agent-sender", room_id)
    bystander = await joined_client(server, sio_client, "agent-bystander", room_id)
    slow = await SlowPollingReader.join(server, server.mint("agent-slow"), room_id)
    try:
        # when
        owed, lefts = await relay_until_gone(sender, bystander, {slow.client_id})
        # then: the session is over (its POSTs are refused) and the room was told
        assert lefts == [
            {"roomId": room_id, "clientId": slow.client_id, "agentId": "agent-slow", "reason": "disconnected"}
        ]
        await slow.wait_ended_by_server(timeout=5)
        await assert_bystander_served(sender, bystander, owed)
        assert SLOW_READER_LOG in server.stderr_text()
    finally:
        await close_all([slow])


@pytest.mark.parametrize("_case", ["daphne", "uvicorn"])
async def test_broadcast_to_nine_slow_readers_cuts_off_each_and_serves_the_bystander(
    _case: str, live_servers: Any, sio_client: Any
) -> None:
    # given: nine websocket members that stopped reading, one that reads, one sender
    (server,) = live_servers(server=_case, env=ENV)
    room_id = (await server.acreate_room())["id"]
    sender = await joined_client(server, sio_client, "agent-sender", room_id)
    bystander = await joined_client(server, sio_client, "agent-bystander", room_id)
    slow = [await SlowWebsocketReader.join(server, server.mint(f"agent-slow-{i}"), room_id) for i in range(9)]
    try:
        for _ in slow:
            await bystander.next("user_joined")
        # when: the sender broadcasts 60 kB offers (one event reaches ten members)
        owed, lefts = await relay_until_gone(sender, bystander, {s.client_id for s in slow}, broadcast=True)
        # then: each slow member was cut off and reported once
        assert sorted(left["clientId"] for left in lefts) == sorted(s.client_id for s in slow)
        assert {left["reason"] for left in lefts} == {"disconnected"}
        for reader in slow:
            await reader.wait_ended_by_server(timeout=15)
        await assert_bystander_served(sender, bystander, owed)
        status, room = await server.aget(f"/api/rooms/{room_id}")
        assert status == 200
        assert {p["clientId"] for p in room["participants"]} == {sender.client_id, bystander.client_id}
    finally:
        await close_all(slow)
