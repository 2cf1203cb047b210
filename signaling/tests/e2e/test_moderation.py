"""Moderation end to end (SPEC section 9): kick, ban, mute, room PATCH, duplicateIdentity.

Real daphne processes and real python-socketio clients: one instance (SQLite, in-memory
layer), and two instances over Redis and PostgreSQL where the kicked or replaced socket is
on the other instance than the REST call or the new socket. The races (a ban against
concurrent joins of the banned agent, many replacing joins at once) run many real clients
at the same moment and check the invariant: the banned agent is never left in the room, and
exactly one socket of a replaced agent is. The cluster cases are skipped without Redis and
PostgreSQL on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio

from rooms.tests.fixtures import ANY_ISO_UTC, ANY_TEXT
from signaling.tests.fixtures import (
    CLUSTER_SKIP_REASON,
    PATIENT_HEARTBEAT,
    POSTGRES_URL,
    REDIS_URL,
    LiveServer,
    SioClient,
    cluster_backends_available,
)

pytestmark = [pytest.mark.e2e]

needs_cluster = pytest.mark.skipif(not cluster_backends_available(), reason=CLUSTER_SKIP_REASON)
CREATOR = "agent-creator"
RACERS = 10
JOIN_SPREAD_S = 0.03  # between two racers' joins: some land before the ban, some after
WAIT_S = 10.0


@pytest.fixture(scope="module")
def single(live_servers_module: Any) -> LiveServer:
    """One instance (SQLite, in-process layer) shared by this module's one-instance tests."""
    (server,) = live_servers_module(env=PATIENT_HEARTBEAT)
    return server


@pytest.fixture(scope="module")
def cluster(live_servers_module: Any) -> tuple[LiveServer, LiveServer]:
    """Two instances over Redis and PostgreSQL."""
    if not cluster_backends_available():
        pytest.skip(CLUSTER_SKIP_REASON)
    env = {
        **PATIENT_HEARTBEAT,
        "REDIS_URL": REDIS_URL,
        "REDIS_PREFIX": "e2e" + uuid.uuid4().hex[:16],
        "DATABASE_URL": POSTGRES_URL,
        "MAX_PARTICIPANTS": str(RACERS * 2),
    }
    first, second = live_servers_module(count=2, env=env)
    return first, second


@pytest.fixture
def member(sio_client: Callable[[], SioClient]) -> Callable[..., Any]:
    """``await member(server, agent_id, room_id=None)``: a connected client, joined when given a room."""

    async def make(server: LiveServer, agent_id: str, room_id: str | None = None) -> SioClient:
        client = sio_client()
        await client.connect_as(server, agent_id)
        if room_id is not None:
            reply = await client.join(room_id)
            assert reply["ok"] is True, reply
        return client

    return make


def refusal(code: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": ANY_TEXT}}


def left(client: SioClient, room_id: str, reason: str) -> dict[str, Any]:
    return {"roomId": room_id, "clientId": client.client_id, "agentId": client.agent_id, "reason": reason}


async def as_creator(server: LiveServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return await server.arequest(method, path, body, token=server.mint(CREATOR))


async def kick(server: LiveServer, room_id: str, client: SioClient, body: Any = None) -> tuple[int, Any]:
    return await as_creator(server, "POST", f"/api/rooms/{room_id}/participants/{client.client_id}/kick", body or {})


async def present(server: LiveServer, room_id: str) -> list[tuple[str, str]]:
    """``(clientId, agentId)`` of the room's live participants (presence, cluster-wide)."""
    status, detail = await server.aget(f"/api/rooms/{room_id}")
    assert status == 200, detail
    return [(p["clientId"], p["agentId"]) for p in detail["participants"]]


# -- one instance --------------------------------------------------------------------------


async def test_kick_takes_the_participant_out_and_tells_the_room(single: LiveServer, member: Any) -> None:
    # given
    room = await single.acreate_room(token=single.mint(CREATOR))
    room_id = room["id"]
    alice = await member(single, "agent-alice", room_id)
    bob = await member(single, "agent-bob", room_id)
    await alice.next("user_joined")
    # when
    answer = await kick(single, room_id, bob, {"reason": "spam"})
    # then
    assert answer == (204, None)
    assert await bob.next("kicked") == {"roomId": room_id, "reason": "spam", "banned": False}
    assert await alice.next("user_left") == left(bob, room_id, "kicked")
    assert await bob.call("offer", {"sdp": "v=0"}) == refusal("not_in_room")  # connected, out of the room
    assert await present(single, room_id) == [(alice.client_id, "agent-alice")]
    assert await bob.receive_nothing("user_left")
    # not banned: it may come back
    assert (await bob.join(room_id))["ok"] is True
    assert (await alice.next("user_joined"))["clientId"] == bob.client_id


async def test_kick_of_a_client_not_in_the_room_answers_404_and_changes_nothing(
    single: LiveServer, member: Any
) -> None:
    # given
    room = await single.acreate_room(token=single.mint(CREATOR))
    alice = await member(single, "agent-alice", room["id"])
    outsider = await member(single, "agent-out")
    # when
    answer = await kick(single, room["id"], outsider)
    # then
    assert answer == (404, {"detail": ANY_TEXT, "code": "participant_not_found"})
    assert await present(single, room["id"]) == [(alice.client_id, "agent-alice")]
    assert await alice.receive_nothing() and await outsider.receive_nothing()


async def test_kick_with_ban_keeps_the_agent_out_until_lifted(single: LiveServer, member: Any) -> None:
    # given
    room = await single.acreate_room(token=single.mint(CREATOR))
    room_id = room["id"]
    alice = await member(single, "agent-alice", room_id)
    bob = await member(single, "agent-bob", room_id)
    await alice.next("user_joined")
    # when
    answer = await kick(single, room_id, bob, {"reason": "abuse", "banSeconds": 600})
    # then
    assert answer == (204, None)
    assert await bob.next("kicked") == {"roomId": room_id, "reason": "abuse", "banned": True}
    assert await alice.next("user_left") == left(bob, room_id, "kicked")
    assert await bob.call("join_room", {"roomId": room_id}) == refusal("forbidden")
    other_bob = await member(single, "agent-bob")
    assert await other_bob.call("join_room", {"roomId": room_id}) == refusal("forbidden")
    token_answer = await single.arequest("POST", f"/api/rooms/{room_id}/join", {}, token=single.mint("agent-bob"))
    assert token_answer == (403, {"detail": ANY_TEXT, "code": "forbidden"})
    assert await as_creator(single, "GET", f"/api/rooms/{room_id}/bans") == (
        200,
        [{"agentId": "agent-bob", "until": ANY_ISO_UTC, "reason": "abuse"}],
    )
    assert await present(single, room_id) == [(alice.client_id, "agent-alice")]
    # when the ban is lifted
    assert await as_creator(single, "DELETE", f"/api/rooms/{room_id}/bans/agent-bob") == (204, None)
    # then
    assert (await bob.join(room_id))["ok"] is True
    assert await as_creator(single, "GET", f"/api/rooms/{room_id}/bans") == (200, [])
    lifted_again = await as_creator(single, "DELETE", f"/api/rooms/{room_id}/bans/agent-bob")
    assert lifted_again == (404, {"detail": ANY_TEXT, "code": "ban_not_found"})


async def test_mute_tells_everyone_in_the_room_the_participant_included(single: LiveServer, member: Any) -> None:
    # given
    room = await single.acreate_room(token=single.mint(CREATOR))
    room_id = room["id"]
    alice = await member(single, "agent-alice", room_id)
    bob = await member(single, "agent-bob", room_id)
    await alice.next("user_joined")
    # when
    status, body = await as_creator(
        single, "PATCH", f"/api/rooms/{room_id}/participants/{bob.client_id}", {"muted": True}
    )
    # then
    assert (status, body) == (
        200,
        {"clientId": bob.client_id, "agentId": "agent-bob", "joinedAt": ANY_ISO_UTC, "muted": True},
    )
    update = {"roomId": room_id, "clientId": bob.client_id, "agentId": "agent-bob", "muted": True}
    assert await bob.next("participant_updated") == update
    assert await alice.next("participant_updated") == update
    status, detail = await single.aget(f"/api/rooms/{room_id}")
    assert {p["clientId"]: p["muted"] for p in detail["participants"]} == {alice.client_id: False, bob.client_id: True}
    carol = await member(single, "agent-carol")
    joined = await carol.join(room_id)
    assert {p["clientId"]: p["muted"] for p in joined["participants"]} == {
        alice.client_id: False,
        bob.client_id: True,
    }


async def test_room_patch_tells_members_and_a_lower_cap_keeps_those_present(single: LiveServer, member: Any) -> None:
    # given
    room = await single.acreate_room(token=single.mint(CREATOR))
    room_id = room["id"]
    alice = await member(single, "agent-alice", room_id)
    bob = await member(single, "agent-bob", room_id)
    await alice.next("user_joined")
    # when
    status, body = await as_creator(
        single, "PATCH", f"/api/rooms/{room_id}", {"name": "renamed", "settings": {"maxParticipants": 1}}
    )
    # then
    expected = {**room, "name": "renamed", "settings": {**room["settings"], "maxParticipants": 1}}
    assert (status, body) == (200, {**expected, "participantCount": 2})
    for client in (alice, bob):
        assert await client.next("room_updated") == {"roomId": room_id, "room": {**expected, "participantCount": 2}}
    assert len(await present(single, room_id)) == 2
    carol = await member(single, "agent-carol")
    assert await carol.call("join_room", {"roomId": room_id}) == refusal("room_full")


async def test_duplicate_identity_reject_refuses_a_second_socket_of_the_agent(single: LiveServer, member: Any) -> None:
    # given
    room = await single.acreate_room(token=single.mint(CREATOR), settings={"duplicateIdentity": "reject"})
    first = await member(single, "agent-alice", room["id"])
    second = await member(single, "agent-alice")
    # when
    reply = await second.call("join_room", {"roomId": room["id"]})
    # then
    assert reply == refusal("forbidden")
    assert await present(single, room["id"]) == [(first.client_id, "agent-alice")]
    assert await first.receive_nothing()


async def test_duplicate_identity_replace_hands_the_seat_to_the_new_socket(single: LiveServer, member: Any) -> None:
    # given
    room = await single.acreate_room(token=single.mint(CREATOR), settings={"duplicateIdentity": "replace"})
    room_id = room["id"]
    watcher = await member(single, "agent-watcher", room_id)
    old = await member(single, "agent-alice", room_id)
    await watcher.next("user_joined")
    new = await member(single, "agent-alice")
    # when
    reply = await new.join(room_id)
    # then
    assert reply["ok"] is True
    assert [p["clientId"] for p in reply["participants"]] == [watcher.client_id]
    assert await old.next("kicked") == {"roomId": room_id, "reason": "replaced", "banned": False}
    assert await watcher.next("user_left") == left(old, room_id, "replaced")
    assert (await watcher.next("user_joined"))["clientId"] == new.client_id
    assert sorted(await present(single, room_id)) == sorted(
        [(watcher.client_id, "agent-watcher"), (new.client_id, "agent-alice")]
    )
    assert await old.call("offer", {"sdp": "v=0"}) == refusal("not_in_room")


# -- two instances ---------------------------------------------------------------------------


@needs_cluster
async def test_kick_through_one_instance_of_a_socket_on_the_other(
    cluster: tuple[LiveServer, LiveServer], member: Any
) -> None:
    # given
    a, b = cluster
    room = await a.acreate_room(token=a.mint(CREATOR))
    room_id = room["id"]
    alice = await member(a, "agent-alice", room_id)
    carol = await member(b, "agent-carol", room_id)
    bob = await member(b, "agent-bob", room_id)
    await alice.next("user_joined")  # carol
    await alice.next("user_joined")  # bob
    await carol.next("user_joined")  # bob
    # when: the REST call reaches A, bob's socket is on B
    answer = await kick(a, room_id, bob, {"banSeconds": 300})
    # then: the answer came after bob was out on B
    assert answer == (204, None)
    assert await bob.call("offer", {"sdp": "v=0"}) == refusal("not_in_room")
    assert await bob.next("kicked") == {"roomId": room_id, "reason": "kicked", "banned": True}
    assert await alice.next("user_left") == left(bob, room_id, "kicked")
    assert await carol.next("user_left") == left(bob, room_id, "kicked")
    assert sorted(await present(b, room_id)) == sorted(
        [(alice.client_id, "agent-alice"), (carol.client_id, "agent-carol")]
    )
    # the ban holds on both instances and on both join-token endpoints
    assert await bob.call("join_room", {"roomId": room_id}) == refusal("forbidden")
    bob_on_a = await member(a, "agent-bob")
    assert await bob_on_a.call("join_room", {"roomId": room_id}) == refusal("forbidden")
    for server in cluster:
        token_answer = await server.arequest("POST", f"/api/rooms/{room_id}/join", {}, token=server.mint("agent-bob"))
        assert token_answer == (403, {"detail": ANY_TEXT, "code": "forbidden"})
    assert await alice.receive_nothing("user_joined") and await carol.receive_nothing("user_joined")


@needs_cluster
async def test_mute_and_room_patch_reach_members_on_both_instances(
    cluster: tuple[LiveServer, LiveServer], member: Any
) -> None:
    # given
    a, b = cluster
    room = await a.acreate_room(token=a.mint(CREATOR))
    room_id = room["id"]
    alice = await member(a, "agent-alice", room_id)
    bob = await member(b, "agent-bob", room_id)
    await alice.next("user_joined")
    # when
    status, _ = await as_creator(a, "PATCH", f"/api/rooms/{room_id}/participants/{bob.client_id}", {"muted": True})
    patched = await as_creator(a, "PATCH", f"/api/rooms/{room_id}", {"settings": {"muteOnEntry": True}})
    # then
    assert status == 200 and patched[0] == 200
    update = {"roomId": room_id, "clientId": bob.client_id, "agentId": "agent-bob", "muted": True}
    assert await alice.next("participant_updated") == update
    assert await bob.next("participant_updated") == update
    for client in (alice, bob):
        event = await client.next("room_updated")
        assert event["room"]["settings"]["muteOnEntry"] is True
    # B's cached policy was dropped: a joiner on B starts muted
    carol = await member(b, "agent-carol")
    assert (await carol.join(room_id))["muted"] is True


@needs_cluster
async def test_replace_across_instances_moves_the_seat_to_the_new_socket(
    cluster: tuple[LiveServer, LiveServer], member: Any
) -> None:
    # given
    a, b = cluster
    room = await a.acreate_room(token=a.mint(CREATOR), settings={"duplicateIdentity": "replace"})
    room_id = room["id"]
    watcher_a = await member(a, "agent-watcher-a", room_id)
    watcher_b = await member(b, "agent-watcher-b", room_id)
    old = await member(a, "agent-alice", room_id)
    await watcher_a.next("user_joined")
    await watcher_a.next("user_joined")
    await watcher_b.next("user_joined")
    new = await member(b, "agent-alice")
    # when
    reply = await new.join(room_id)
    # then
    assert reply["ok"] is True
    assert sorted(p["clientId"] for p in reply["participants"]) == sorted([watcher_a.client_id, watcher_b.client_id])
    assert await old.next("kicked") == {"roomId": room_id, "reason": "replaced", "banned": False}
    for watcher in (watcher_a, watcher_b):
        assert await watcher.next("user_left") == left(old, room_id, "replaced")
        assert (await watcher.next("user_joined"))["clientId"] == new.client_id
    assert await old.receive_nothing("user_left")
    assert sorted(await present(a, room_id)) == sorted(
        [
            (watcher_a.client_id, "agent-watcher-a"),
            (watcher_b.client_id, "agent-watcher-b"),
            (new.client_id, "agent-alice"),
        ]
    )


@needs_cluster
async def test_a_ban_and_concurrent_joins_of_the_agent_never_both_win(
    cluster: tuple[LiveServer, LiveServer], member: Any
) -> None:
    # given: agent-x in the room once, and many more sockets of agent-x about to join
    a, b = cluster
    room = await a.acreate_room(token=a.mint(CREATOR), settings={"maxParticipants": RACERS + 2})
    room_id = room["id"]
    target = await member(a, "agent-x", room_id)
    racers = [await member(cluster[i % 2], "agent-x") for i in range(RACERS)]

    # when: the racers join one after another (spread over the kick's time) while the
    # kick-with-ban goes through B; which ones come before the ban is up to the machine
    async def join_after(racer: SioClient, delay_s: float) -> Any:
        await asyncio.sleep(delay_s)
        return await racer.call("join_room", {"roomId": room_id}, timeout=WAIT_S)

    results = await asyncio.gather(
        kick(b, room_id, target, {"banSeconds": 300}),
        *(join_after(racer, i * JOIN_SPREAD_S) for i, racer in enumerate(racers)),
    )
    # then: no socket of agent-x is left; every racer that was admitted was kicked
    assert results[0] == (204, None)
    assert await target.next("kicked", timeout=WAIT_S) == {"roomId": room_id, "reason": "kicked", "banned": True}
    admitted = []
    for racer, reply in zip(racers, results[1:], strict=True):
        assert reply["ok"] is True or reply == refusal("forbidden"), reply
        if reply["ok"]:
            admitted.append(racer)
    for racer in admitted:
        assert (await racer.next("kicked", timeout=WAIT_S))["banned"] is True
    assert await present(a, room_id) == []
    refused = [r for r in racers if r not in admitted]
    for racer in refused:
        assert racer.queues["kicked"].empty()


@needs_cluster
async def test_many_replacing_joins_at_once_leave_exactly_one_socket_of_the_agent(
    cluster: tuple[LiveServer, LiveServer], member: Any
) -> None:
    # given
    a, b = cluster
    room = await a.acreate_room(token=a.mint(CREATOR), settings={"duplicateIdentity": "replace"})
    room_id = room["id"]
    watcher = await member(b, "agent-watcher", room_id)
    racers = [await member(cluster[i % 2], "agent-y") for i in range(RACERS)]
    # when
    replies = await asyncio.gather(*(racer.call("join_room", {"roomId": room_id}, timeout=WAIT_S) for racer in racers))
    # then: all joined, exactly one holds the seat, every other one was told it was replaced
    assert all(reply["ok"] is True for reply in replies), replies
    seats = [client_id for client_id, agent_id in await present(a, room_id) if agent_id == "agent-y"]
    assert len(seats) == 1
    (winner,) = [r for r in racers if r.client_id == seats[0]]
    for racer in racers:
        if racer is not winner:
            assert await racer.next("kicked", timeout=WAIT_S) == {
                "roomId": room_id,
                "reason": "replaced",
                "banned": False,
            }
    assert await winner.receive_nothing("kicked", timeout=0.5)
    assert await winner.call("offer", {"to": watcher.client_id, "sdp": "v=0"}) == {"ok": True}
    for racer in racers:
        if racer is not winner:
            assert await racer.call("offer", {"sdp": "v=0"}) == refusal("not_in_room")


@needs_cluster
async def test_a_ban_holds_after_redis_lost_the_rooms_bans(cluster: tuple[LiveServer, LiveServer], member: Any) -> None:
    # given: a ban, then Redis loses the room's ban keys (as after a restart without persistence)
    a, b = cluster
    room = await a.acreate_room(token=a.mint(CREATOR))
    room_id = room["id"]
    bob = await member(b, "agent-bob", room_id)
    assert await kick(a, room_id, bob, {"banSeconds": 300}) == (204, None)
    await bob.next("kicked")
    prefix = a.env["REDIS_PREFIX"]
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        deleted = await client.delete(f"{prefix}:bans:{room_id}", f"{prefix}:bansloaded:{room_id}")
    finally:
        await client.aclose()
    assert deleted == 2
    # when
    replies = [
        await bob.call("join_room", {"roomId": room_id}),
        await (await member(a, "agent-bob")).call("join_room", {"roomId": room_id}),
    ]
    # then: presence reloaded the ban from PostgreSQL
    assert replies == [refusal("forbidden"), refusal("forbidden")]
    assert await present(a, room_id) == []
