"""Webhooks end to end (SPEC section 10): real daphne servers POST to a real HTTP receiver.

The receiver (``aiohttp.web`` on a free 127.0.0.1 port in the test's event loop) verifies
every request with the ``standardwebhooks`` library and answers as each test tells it (200,
500, or not at all). Covered: a room's whole life in ``seq`` order, retries with the same
``webhook-id`` after 500s, a hanging receiver (the 10 s timeout, one slow test) that slows
neither signaling nor other rooms' events, events waiting in the database through a server
restart, joins and leaves during a database outage (kept, written afterwards), and two
instances over Redis and PostgreSQL delivering each event exactly once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from rooms.tests.fixtures import ANY_ISO_UTC
from signaling.tests.e2e.test_outages import PostgresServer
from signaling.tests.e2e.test_outages import own_postgres as own_postgres  # the fixture
from signaling.tests.fixtures import (
    CLUSTER_SKIP_REASON,
    HOST,
    PATIENT_HEARTBEAT,
    POSTGRES_URL,
    REDIS_URL,
    LiveServer,
    SioClient,
    cluster_backends_available,
    free_port,
)

pytestmark = pytest.mark.e2e

WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WAIT_S = 20.0


@dataclass
class Received:
    """One POST the receiver verified."""

    webhook_id: str
    body: str
    payload: dict[str, Any]
    at: float
    status: int = 0

    @property
    def room_id(self) -> str:
        return str(self.payload["data"]["roomId"])

    @property
    def type(self) -> str:
        return str(self.payload["type"])


@dataclass
class Receiver:
    """A webhook endpoint: verifies with ``standardwebhooks``, records, answers ``answer(received)``."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    answer: Callable[[Received], Awaitable[int]] | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        try:
            payload = Webhook(WEBHOOK_SECRET).verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            self.rejected.append(f"{exc}: {dict(request.headers)}")
            self.arrived.set()
            return web.Response(status=400)
        received = Received(request.headers["webhook-id"], body, payload, time.monotonic())
        self.received.append(received)
        self.arrived.set()
        received.status = 200 if self.answer is None else await self.answer(received)
        return web.Response(status=received.status)

    def of_room(self, room_id: str) -> list[Received]:
        return [r for r in self.received if r.room_id == room_id]

    async def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(
                    f"receiver: no {what} within {timeout} s; got {[(r.type, r.room_id) for r in self.received]}"
                )
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), min(left, 0.5))
            except TimeoutError:
                continue
        assert self.rejected == []  # every request carried a valid Standard Webhooks signature

    async def wait_nothing_more(self, room_id: str, count: int, quiet_s: float = 1.5) -> bool:
        """True when, ``quiet_s`` later, the room still has only ``count`` deliveries."""
        await asyncio.sleep(quiet_s)
        return len(self.of_room(room_id)) == count

    async def hang(self) -> int:
        """Answer nothing until the test ends (the server's 10 s timeout gives up first)."""
        await asyncio.wait_for(self.released.wait(), 60)
        return 200


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A running receiver at ``receiver.url``; stopped (hanging requests released) at teardown."""
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", hook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, HOST, port).start()
    hook.url = f"http://{HOST}:{port}/hooks"
    try:
        yield hook
    finally:
        hook.released.set()
        await runner.cleanup()


def webhook_env(receiver: Receiver, **extra: str) -> dict[str, str]:
    return {**PATIENT_HEARTBEAT, "WEBHOOK_URL": receiver.url, "WEBHOOK_SECRET": WEBHOOK_SECRET, **extra}


async def joined(sio_client: Callable[[], SioClient], server: LiveServer, agent_id: str, room_id: str) -> SioClient:
    client = sio_client()
    await client.connect_as(server, agent_id)
    reply = await client.join(room_id)
    assert reply["ok"] is True, reply
    return client


async def staff_events(server: LiveServer, room_id: str) -> list[dict[str, Any]]:
    status, page = await server.arequest(
        "GET", f"/api/events?roomId={room_id}", token=server.mint("ops", is_staff=True)
    )
    assert status == 200, page
    return list(page["results"])


async def test_a_rooms_life_reaches_the_receiver_signed_and_in_seq_order(
    live_servers: Any, receiver: Receiver, sio_client: Callable[[], SioClient]
) -> None:
    # given
    [server] = live_servers(env=webhook_env(receiver))
    creator = server.mint("agent-creator")
    room = await server.acreate_room(creator, name="Standup")
    room_id = room["id"]
    # when a room lives its life
    alice = await joined(sio_client, server, "agent-alice", room_id)
    alice_id = alice.client_id
    bob = await joined(sio_client, server, "agent-bob", room_id)
    assert (await bob.call("leave_room", {"roomId": room_id}))["ok"] is True
    await alice.disconnect()
    await receiver.wait_for(lambda: len(receiver.of_room(room_id)) == 6, "six events before the close")
    status, _ = await server.arequest("DELETE", f"/api/rooms/{room_id}", token=creator)
    assert status == 204
    await receiver.wait_for(lambda: len(receiver.of_room(room_id)) == 7, "room.closed")
    # then
    got = [r.payload for r in receiver.of_room(room_id)]
    base = {"roomId": room_id}
    assert got == [
        {
            "type": "room.created",
            "timestamp": ANY_ISO_UTC,
            "data": {
                **base,
                "seq": 1,
                "participantCount": 0,
                "name": "Standup",
                "type": "voice",
                "createdBy": "agent-creator",
            },
        },
        {"type": "room.started", "timestamp": ANY_ISO_UTC, "data": {**base, "seq": 2, "participantCount": 1}},
        {
            "type": "participant.joined",
            "timestamp": ANY_ISO_UTC,
            "data": {**base, "seq": 3, "participantCount": 1, "clientId": alice_id, "agentId": "agent-alice"},
        },
        {
            "type": "participant.joined",
            "timestamp": ANY_ISO_UTC,
            "data": {**base, "seq": 4, "participantCount": 2, "clientId": bob.client_id, "agentId": "agent-bob"},
        },
        {
            "type": "participant.left",
            "timestamp": ANY_ISO_UTC,
            "data": {
                **base,
                "seq": 5,
                "participantCount": 1,
                "clientId": bob.client_id,
                "agentId": "agent-bob",
                "reason": "left",
            },
        },
        {
            "type": "participant.left",
            "timestamp": ANY_ISO_UTC,
            "data": {
                **base,
                "seq": 6,
                "participantCount": 0,
                "clientId": alice_id,
                "agentId": "agent-alice",
                "reason": "disconnected",
            },
        },
        {
            "type": "room.closed",
            "timestamp": ANY_ISO_UTC,
            "data": {**base, "seq": 7, "participantCount": 0, "reason": "deleted"},
        },
    ]
    # and the reconciliation endpoint lists the same events, delivered at the first attempt
    events = await staff_events(server, room_id)
    assert [(e["id"], e["seq"], e["state"], e["attempts"]) for e in events] == [
        (r.webhook_id, r.payload["data"]["seq"], "delivered", 1) for r in receiver.of_room(room_id)
    ]


async def test_a_500_is_retried_with_the_same_webhook_id_and_holds_the_rooms_later_events(
    live_servers: Any, receiver: Receiver, sio_client: Callable[[], SioClient]
) -> None:
    # given a receiver that fails the first two attempts of every room.created
    async def fail_created_twice(received: Received) -> int:
        tries = [r for r in receiver.received if r.webhook_id == received.webhook_id]
        return 500 if received.type == "room.created" and len(tries) <= 2 else 200

    receiver.answer = fail_created_twice
    [server] = live_servers(env=webhook_env(receiver))
    room_id = (await server.acreate_room())["id"]
    # when someone joins while room.created is being retried
    await joined(sio_client, server, "agent-alice", room_id)
    await receiver.wait_for(lambda: len(receiver.of_room(room_id)) == 5, "three attempts and two events")
    # then room.created came three times, same id and body, after about 1 s and 5 s
    got = receiver.of_room(room_id)
    assert [r.type for r in got] == [
        "room.created",
        "room.created",
        "room.created",
        "room.started",
        "participant.joined",
    ]
    first, second, third = got[:3]
    assert first.webhook_id == second.webhook_id == third.webhook_id
    assert first.body == second.body == third.body
    assert second.at - first.at >= 0.9 and third.at - second.at >= 4.5  # never earlier than the SPEC schedule
    assert len({r.webhook_id for r in got}) == 3
    events = await staff_events(server, room_id)
    assert [(e["type"], e["state"], e["attempts"]) for e in events] == [
        ("room.created", "delivered", 3),
        ("room.started", "delivered", 1),
        ("participant.joined", "delivered", 1),
    ]


async def test_a_hanging_receiver_slows_neither_signaling_nor_other_rooms_and_is_retried(
    live_servers: Any, receiver: Receiver, sio_client: Callable[[], SioClient]
) -> None:
    # given a receiver that never answers the first attempt of the first room's room.created
    hung: list[str] = []

    async def hang_first(received: Received) -> int:
        if not hung:
            hung.append(received.webhook_id)
            return await receiver.hang()
        return 200

    receiver.answer = hang_first
    [server] = live_servers(env=webhook_env(receiver))
    slow_room = (await server.acreate_room(name="slow"))["id"]
    await receiver.wait_for(lambda: bool(hung), "the first request")
    # when, while that request hangs, another room is created and used
    other_room = (await server.acreate_room(name="other"))["id"]
    alice = await joined(sio_client, server, "agent-alice", other_room)
    bob = await joined(sio_client, server, "agent-bob", other_room)
    assert (await alice.call("offer", {"to": bob.client_id, "sdp": "v=0"}))["ok"] is True
    assert (await bob.next("offer"))["sdp"] == "v=0"
    await receiver.wait_for(lambda: len(receiver.of_room(other_room)) == 4, "the other room's events")
    # then signaling and the other room's events went on while the first request still hung
    assert [r.webhook_id for r in receiver.received if r.room_id == slow_room] == hung
    # and after the 10 s timeout the event is tried again with the same webhook-id
    await receiver.wait_for(lambda: len(receiver.of_room(slow_room)) == 2, "the retry", timeout=30)
    first, retry = receiver.of_room(slow_room)
    assert retry.webhook_id == first.webhook_id and retry.at - first.at >= 10
    events = await staff_events(server, slow_room)
    assert [(e["type"], e["state"], e["attempts"]) for e in events] == [("room.created", "delivered", 2)]


@pytest.mark.timeout(150)
async def test_events_wait_in_the_database_through_a_restart(
    live_servers: Any, receiver: Receiver, sio_client: Callable[[], SioClient], tmp_path: Path
) -> None:
    # given a receiver that is down (503) while the first server runs
    is_up = False

    async def down_until_up(received: Received) -> int:
        return 200 if is_up else 503

    receiver.answer = down_until_up
    env = webhook_env(receiver, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    [first] = live_servers(env=env)
    room_id = (await first.acreate_room())["id"]
    client = await joined(sio_client, first, "agent-alice", room_id)
    await receiver.wait_for(lambda: len(receiver.of_room(room_id)) >= 1, "a first attempt")
    attempted = receiver.of_room(room_id)[0]

    async def attempt_written() -> bool:
        return (await staff_events(first, room_id))[0]["attempts"] >= 1

    while not await attempt_written():
        await asyncio.sleep(0.05)
    # when the server stops with its events undelivered, and another starts on the same database
    first.stop()
    await client.disconnect()
    is_up = True
    [second] = live_servers(env=env)
    # then the new server delivers them, in order, room.created with its first webhook-id
    await receiver.wait_for(
        lambda: len([r for r in receiver.of_room(room_id) if r.status == 200]) == 3,
        "the three events after the restart",
        timeout=120,  # at worst the first server's lease (60 s) runs out first
    )
    delivered = [r for r in receiver.of_room(room_id) if r.status == 200]
    assert [r.type for r in delivered] == ["room.created", "room.started", "participant.joined"]
    assert delivered[0].webhook_id == attempted.webhook_id
    assert [r.status for r in receiver.of_room(room_id)][-3:] == [200, 200, 200]  # nothing after them failed
    events = await staff_events(second, room_id)
    assert [(e["type"], e["state"]) for e in events] == [
        ("room.created", "delivered"),
        ("room.started", "delivered"),
        ("participant.joined", "delivered"),
    ]


@pytest.mark.skipif(not cluster_backends_available(), reason=CLUSTER_SKIP_REASON)
@pytest.mark.timeout(120)
async def test_two_instances_deliver_each_event_exactly_once_in_seq_order_per_room(
    live_servers: Any, receiver: Receiver, sio_client: Callable[[], SioClient]
) -> None:
    # given two instances sharing Redis and PostgreSQL
    env = webhook_env(
        receiver, REDIS_URL=REDIS_URL, REDIS_PREFIX="e2e" + uuid.uuid4().hex[:16], DATABASE_URL=POSTGRES_URL
    )
    servers = live_servers(count=2, env=env)
    rooms = 4
    # when rooms live their lives across both instances
    room_ids = []
    for index in range(rooms):
        home, away = servers[index % 2], servers[(index + 1) % 2]
        room_id = (await home.acreate_room(name=f"room {index}"))["id"]
        room_ids.append(room_id)
        a = await joined(sio_client, home, f"agent-a{index}", room_id)
        b = await joined(sio_client, away, f"agent-b{index}", room_id)
        assert (await b.call("leave_room", {"roomId": room_id}))["ok"] is True
        assert (await a.call("leave_room", {"roomId": room_id}))["ok"] is True
    for index, room_id in enumerate(room_ids):
        await receiver.wait_for(lambda room_id=room_id: len(receiver.of_room(room_id)) >= 6, "six events of a room")
        status, _ = await servers[(index + 1) % 2].arequest(
            "DELETE", f"/api/rooms/{room_id}", token=servers[0].mint("agent-creator")
        )
        assert status == 204
    ours = set(room_ids)
    await receiver.wait_for(
        lambda: len({r.webhook_id for r in receiver.received if r.room_id in ours}) == 7 * rooms, "every event"
    )
    await asyncio.sleep(2.5)  # more than two polls of each worker: a duplicate would have come by now
    # then every event arrived exactly once, each room's in seq order
    mine = [r for r in receiver.received if r.room_id in ours]
    assert set(Counter(r.webhook_id for r in mine).values()) == {1}
    for room_id in room_ids:
        got = receiver.of_room(room_id)
        assert [r.payload["data"]["seq"] for r in got] == [1, 2, 3, 4, 5, 6, 7]
        assert [r.type for r in got] == [
            "room.created",
            "room.started",
            "participant.joined",
            "participant.joined",
            "participant.left",
            "participant.left",
            "room.closed",
        ]
        assert [r.payload["data"]["participantCount"] for r in got] == [0, 1, 1, 2, 1, 0, 0]
        events = await staff_events(servers[0], room_id)
        assert {(e["state"], e["attempts"]) for e in events} == {("delivered", 1)}


async def test_a_kick_with_a_ban_and_a_replacing_join_reach_the_receiver_in_order(
    live_servers: Any, receiver: Receiver, sio_client: Callable[[], SioClient]
) -> None:
    # given a room whose agents replace their older socket, with alice and bob in it
    [server] = live_servers(env=webhook_env(receiver))
    creator = server.mint("agent-creator")
    room_id = (await server.acreate_room(creator, settings={"duplicateIdentity": "replace"}))["id"]
    alice = await joined(sio_client, server, "agent-alice", room_id)
    bob = await joined(sio_client, server, "agent-bob", room_id)
    # when bob is kicked with a ban, then alice joins again from a second socket
    path = f"/api/rooms/{room_id}/participants/{bob.client_id}/kick"
    status, _ = await server.arequest("POST", path, {"reason": "spam", "banSeconds": 60}, token=creator)
    assert status == 204
    alice_again = await joined(sio_client, server, "agent-alice", room_id)
    await receiver.wait_for(lambda: len(receiver.of_room(room_id)) == 8, "eight events")
    # then
    got = [(r.type, r.payload["data"]) for r in receiver.of_room(room_id)]
    base = {"roomId": room_id}
    bob_fields = {"clientId": bob.client_id, "agentId": "agent-bob"}
    assert got[4:] == [
        ("participant.kicked", {**base, "seq": 5, "participantCount": 1, **bob_fields, "banSeconds": 60}),
        ("participant.left", {**base, "seq": 6, "participantCount": 1, **bob_fields, "reason": "kicked"}),
        (
            "participant.left",
            {
                **base,
                "seq": 7,
                "participantCount": 0,
                "clientId": alice.client_id,
                "agentId": "agent-alice",
                "reason": "replaced",
            },
        ),
        (
            "participant.joined",
            {**base, "seq": 8, "participantCount": 1, "clientId": alice_again.client_id, "agentId": "agent-alice"},
        ),
    ]
    assert [d["seq"] for _, d in got] == list(range(1, 9))
    assert await receiver.wait_nothing_more(room_id, 8)


@pytest.mark.parametrize(
    ("_case", "is_delivery_in_flight"),
    [("outcomes_written_before_the_outage", False), ("a_delivery_in_flight_when_the_database_stops", True)],
)
async def test_joins_and_leaves_during_a_database_outage_succeed_and_their_events_come_afterwards(
    live_servers: Any,
    receiver: Receiver,
    sio_client: Callable[[], SioClient],
    own_postgres: PostgresServer,
    _case: str,
    is_delivery_in_flight: bool,
) -> None:
    # given a server on a PostgreSQL of this test's own, and a room it knows with bob in it;
    # in the second case the receiver holds its answer to bob's participant.joined until the
    # database is down (its outcome cannot be written: it used to hold the room for the lease)
    database_down = asyncio.Event()

    async def answer(received: Received) -> int:
        if is_delivery_in_flight and received.payload["data"].get("agentId") == "agent-bob":
            await asyncio.wait_for(database_down.wait(), WAIT_S)
        return 200

    receiver.answer = answer
    [server] = live_servers(env=webhook_env(receiver, DATABASE_URL=own_postgres.url))
    room_id = (await server.acreate_room())["id"]
    await joined(sio_client, server, "agent-bob", room_id)
    alice = sio_client()
    await alice.connect_as(server, "agent-alice")
    await receiver.wait_for(lambda: len(receiver.of_room(room_id)) == 3, "the events before the outage")
    if not is_delivery_in_flight:
        while {e["state"] for e in await staff_events(server, room_id)} != {"delivered"}:
            await asyncio.sleep(0.05)
    # when PostgreSQL stops, alice joins and leaves
    own_postgres.stop()
    database_down.set()
    assert (await alice.join(room_id, timeout=10))["ok"] is True
    assert await alice.call("leave_room", {"roomId": room_id}, timeout=10) == {"ok": True, "roomId": room_id}
    assert await receiver.wait_nothing_more(room_id, 3)
    own_postgres.start()
    # then once it is back, both events arrive, in order, with their counts, well before
    # a lease (60 s) could have run out, and nothing came twice
    await receiver.wait_for(lambda: len(receiver.of_room(room_id)) == 5, "the events of the outage", timeout=30)
    late = [r.payload["data"] for r in receiver.of_room(room_id)[3:]]
    assert [(d["seq"], d["agentId"], d["participantCount"], d.get("reason")) for d in late] == [
        (4, "agent-alice", 2, None),
        (5, "agent-alice", 1, "left"),
    ]
    assert await receiver.wait_nothing_more(room_id, 5)
    events = await staff_events(server, room_id)
    assert [(e["seq"], e["state"], e["attempts"]) for e in events] == [(n, "delivered", 1) for n in range(1, 6)]
