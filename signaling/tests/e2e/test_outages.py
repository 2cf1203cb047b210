"""Redis and PostgreSQL outages under connected clients: answers, not disconnects (issue #11).

Each test runs its own redis-server or PostgreSQL cluster (on a free 127.0.0.1 port, in a
temporary directory) so that it can stop and start it without touching the shared services.
Real daphne processes, real python-socketio clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from signaling.tests.fixtures import PATIENT_HEARTBEAT, LiveServer, RedisServer, SioClient, free_port

pytestmark = [pytest.mark.e2e]

PG_BIN = Path("/usr/lib/postgresql")
WAIT_S = 15.0


def pg_bin() -> Path | None:
    versions = sorted(PG_BIN.glob("*/bin/initdb")) if PG_BIN.exists() else []
    return versions[-1].parent if versions else None


class PostgresServer:
    """A PostgreSQL cluster of this test's own (trust auth), run as the ``postgres`` user."""

    def __init__(self, workdir: Path, bindir: Path) -> None:
        self.port = free_port()
        self.bindir = bindir
        self.data = workdir / "pgdata"
        self.socket_dir = workdir / "pgsock"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, timeout=60, check=False)
        assert done.returncode == 0, f"{args[0]} failed: {done.stderr.decode(errors='replace')}"

    def init(self) -> None:
        for path in (self.data.parent, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(path, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.socket_dir} -c fsync=off"
        # -l: the server's output goes to a file, not to pg_ctl's pipes (which would stay open)
        log = str(self.data.parent / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "-t", "30", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("needs Debian's postgresql (initdb under /usr/lib/postgresql)")
    # Not under pytest's tmp_path: the postgres user must be able to reach the directory.
    workdir = Path(tempfile.mkdtemp(prefix="e2e-postgres-"))
    workdir.chmod(0o755)
    server = PostgresServer(workdir / "pg", bindir)
    try:
        server.init()
        server.start()
        yield server
        with contextlib.suppress(AssertionError):  # already stopped by the test
            server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def joined_client(
    sio_client: Callable[[], SioClient], server: LiveServer, agent_id: str, room_id: str
) -> SioClient:
    client = sio_client()
    await client.connect_as(server, agent_id, transports=["websocket"])
    reply = await client.join(room_id)
    assert reply["ok"] is True, reply
    return client


async def wait_for(predicate: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await predicate():
        assert time.monotonic() < deadline, f"not within {WAIT_S} s: {what}"
        await asyncio.sleep(0.2)


async def test_relays_during_a_redis_outage_are_answered_and_sockets_stay(
    live_servers: Callable[..., list[LiveServer]],
    sio_client: Callable[[], SioClient],
    own_redis: RedisServer,
    tmp_path: Path,
) -> None:
    # given: alice on one instance, bob on the other, over a Redis of this test's own
    env = {**PATIENT_HEARTBEAT, "REDIS_URL": own_redis.url, "REDIS_PREFIX": "e2e" + uuid.uuid4().hex[:16]}
    a, b = live_servers(count=2, env=env)
    room_id = (await a.acreate_room())["id"]
    alice = await joined_client(sio_client, a, "agent-alice", room_id)
    bob = await joined_client(sio_client, b, "agent-bob", room_id)
    await alice.next("user_joined")
    # when: Redis goes away and alice relays to bob
    own_redis.stop()
    reply = await alice.call("offer", {"to": bob.client_id, "sdp": "v=0"}, timeout=10)
    # then: an answer, not a disconnect
    assert reply == {"ok": False, "error": {"code": "unavailable", "message": reply["error"]["message"]}}
    assert alice.sio.connected and bob.sio.connected
    # and once Redis is back (and the instances have renewed their subscriptions: pub/sub
    # messages published before that reach nobody), relays arrive again
    own_redis.start()
    sent = 0

    async def relays() -> bool:
        nonlocal sent
        sent += 1
        answer = await alice.call("offer", {"to": bob.client_id, "sdp": f"v=after-{sent}"}, timeout=10)
        return answer == {"ok": True} and not await bob.receive_nothing("offer", timeout=0.5)

    await wait_for(relays, "a relay after Redis came back")
    offers = [offer["sdp"] for offer in bob.drain("offer")]
    assert offers and "v=0" not in offers
    assert not alice.drain("disconnect") and not bob.drain("disconnect")


async def test_a_room_deleted_while_redis_is_down_stays_closed_on_every_instance_after_it_restarts_empty(
    live_servers: Callable[..., list[LiveServer]],
    sio_client: Callable[[], SioClient],
    own_redis: RedisServer,
) -> None:
    # given: a room created through instance b (so b caches it as open)
    env = {**PATIENT_HEARTBEAT, "REDIS_URL": own_redis.url, "REDIS_PREFIX": "e2e" + uuid.uuid4().hex[:16]}
    a, b = live_servers(count=2, env=env)
    room_id = (await b.acreate_room())["id"]
    # when: it is deleted through a while Redis is down (the row closes; neither presence's
    # closed set nor b's cache can hear of it), then Redis comes back empty
    own_redis.stop()
    status, _ = await a.arequest("DELETE", f"/api/rooms/{room_id}", token=a.mint("agent-creator"))
    assert status in (204, 503), status
    status, room = await a.aget(f"/api/rooms/{room_id}")
    assert (status, room["closed"]) == (200, True)
    own_redis.start()

    async def both_registered() -> bool:
        status, stats = await b.aget("/api/stats")
        return status == 200 and stats["instances"] == 2

    await wait_for(both_registered, "both instances registered again")
    # then: a join through either instance is refused from the database's row
    for server in (b, a):
        client = sio_client()
        await client.connect_as(server, f"agent-after-{server.name}", transports=["websocket"])
        reply = await client.join(room_id, timeout=10)
        assert reply == {"ok": False, "error": {"code": "room_closed", "message": reply["error"]["message"]}}
    status, room = await b.aget(f"/api/rooms/{room_id}")
    assert (status, room["closed"], room["participantCount"]) == (200, True, 0)


async def test_a_database_outage_answers_503_and_unavailable_and_rooms_still_expire_afterwards(
    live_servers: Callable[..., list[LiveServer]], sio_client: Callable[[], SioClient], own_postgres: PostgresServer
) -> None:
    # given: a daphne on a PostgreSQL of this test's own; bob is alone in a room it knows,
    # and a second room exists that this instance has never loaded
    env = {**PATIENT_HEARTBEAT, "DATABASE_URL": own_postgres.url, "ROOM_TIMEOUT": "4000"}
    (server,) = live_servers(env=env)
    (other,) = live_servers(env=env)  # creates the room this server never saw
    known = await server.acreate_room()
    unseen = await other.acreate_room()
    bob = await joined_client(sio_client, server, "agent-bob", known["id"])
    alice = sio_client()
    await alice.connect_as(server, "agent-alice", transports=["websocket"])
    # when: PostgreSQL stops
    own_postgres.stop()
    # then: REST answers 503 with a JSON code
    status, body = await server.aget("/api/rooms")
    assert (status, body["code"]) == (503, "unavailable"), body
    # a join that needs the database is answered, and the socket stays
    reply = await alice.call("join_room", {"roomId": unseen["id"]}, timeout=10)
    assert reply["ok"] is False and reply["error"]["code"] == "unavailable", reply
    # the last member's leave still succeeds
    assert await bob.call("leave_room", {}, timeout=10) == {"ok": True, "roomId": known["id"]}
    assert alice.sio.connected and bob.sio.connected
    # and once PostgreSQL is back, the room emptied during the outage expires
    own_postgres.start()

    async def expired() -> bool:
        status, room = await server.aget(f"/api/rooms/{known['id']}")
        return status == 200 and room.get("closed") is True and room.get("closeReason") == "expired"

    await wait_for(expired, "the emptied room to expire after the outage")
    fresh = await other.acreate_room()
    assert (await alice.join(fresh["id"]))["ok"] is True
