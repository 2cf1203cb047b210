"""The benchmark scenarios: connect, relay, fanout, join storm, cross-instance.

Each scenario takes a running :class:`bench.servers.Cluster` and returns a JSON-able dict.
Latency comes from a ``T@<step>:<perf_counter_ns>|`` marker inside the relayed payload
(the load generator is both sender and receiver, so one clock); loss is deliveries
expected minus deliveries seen after a drain. Every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt

from bench.servers import Cluster, cpu_seconds, rss_kb
from bench.wsclient import EioClient, connect

TOKEN_TTL_S = 3600
P99_BUDGET_MS = 50.0
DRAIN_TIMEOUT_S = 5.0
SETTLE_TIMEOUT_S = 15.0

# A realistic ~1.5 KB SDP offer (JSON-escaped: CRLFs become \r\n in the frame).
_SDP_LINES = [
    "v=0",
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0 1",
    "a=extmap-allow-mixed",
    "a=msid-semantic: WMS stream",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:Fx3d",
    "a=ice-pwd:u2Ez7bOoEXhlQx6gXr7FWv0S",
    "a=ice-options:trickle",
    "a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08",  # noqa: E501 (an SDP line)
    "a=setup:actpass",
    "a=mid:0",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=sendrecv",
    "a=msid:stream audio0",
    "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2",
    "a=rtcp-fb:111 transport-cc",
    "a=fmtp:111 minptime=10;useinbandfec=1",
    "a=rtpmap:63 red/48000/2",
    "a=fmtp:63 111/111",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=ssrc:1001 cname:bench",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99",
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:Fx3d",
    "a=ice-pwd:u2Ez7bOoEXhlQx6gXr7FWv0S",
    "a=setup:actpass",
    "a=mid:1",
    "a=sendrecv",
    "a=msid:stream video0",
    "a=rtcp-mux",
    "a=rtcp-rsize",
    "a=rtpmap:96 VP8/90000",
    "a=rtcp-fb:96 goog-remb",
    "a=rtcp-fb:96 transport-cc",
    "a=rtcp-fb:96 ccm fir",
    "a=rtcp-fb:96 nack",
    "a=rtcp-fb:96 nack pli",
    "a=rtpmap:97 rtx/90000",
    "a=fmtp:97 apt=96",
    "a=rtpmap:98 VP9/90000",
    "a=fmtp:98 profile-id=0",
    "a=rtpmap:99 rtx/90000",
    "a=fmtp:99 apt=98",
    "a=ssrc-group:FID 2001 2002",
    "a=ssrc:2001 cname:bench",
    "a=ssrc:2002 cname:bench",
]
SDP_TAIL = json.dumps("\r\n".join(_SDP_LINES) + "\r\n")[1:-1].encode()
CANDIDATE_TAIL = (
    b"candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 10.0.0.2 rport 46154 "
    b'generation 0","sdpMid":"0","sdpMLineIndex":0}]'
)


def mint_token(secret: str, agent_id: str) -> str:
    """An agent token exactly as the seed mints it: HS256 ``{agentId, iat, exp}``."""
    now = int(time.time())
    return jwt.encode({"agentId": agent_id, "iat": now, "exp": now + TOKEN_TTL_S}, secret, algorithm="HS256")


def percentiles_ms(samples_ns: list[int]) -> dict[str, float | None]:
    """p50/p90/p99/max of nanosecond samples, in milliseconds."""
    if not samples_ns:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(samples_ns)
    n = len(ordered)

    def at(q: float) -> float:
        return round(ordered[min(n - 1, int(q * n))] / 1e6, 3)

    return {"p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99), "max_ms": round(ordered[-1] / 1e6, 3)}


class CpuMeter:
    """CPU used by the servers and by this load process over one interval."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.start()

    def start(self) -> None:
        self.wall = time.monotonic()
        self.server = sum(cpu_seconds(p) for p in self.pids)
        times = os.times()
        self.load = times.user + times.system
        self.server_wait = sum(runqueue_wait_s(p) for p in self.pids)
        self.load_wait = runqueue_wait_s(os.getpid())

    def read(self) -> dict[str, float]:
        wall = time.monotonic() - self.wall
        server = sum(cpu_seconds(p) for p in self.pids) - self.server
        times = os.times()
        load = times.user + times.system - self.load
        server_wait = sum(runqueue_wait_s(p) for p in self.pids) - self.server_wait
        load_wait = runqueue_wait_s(os.getpid()) - self.load_wait
        return {
            "server_cpu_pct": round(100 * server / wall, 1),
            "load_cpu_pct": round(100 * load / wall, 1),
            # Time runnable but not running (other work on the same core): the noise gauge.
            "server_runq_wait_pct": round(100 * server_wait / wall, 1),
            "load_runq_wait_pct": round(100 * load_wait / wall, 1),
        }


def runqueue_wait_s(pid: int) -> float:
    """Seconds the main thread of ``pid`` waited on a run queue (/proc/<pid>/schedstat)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


# -- setup helpers -------------------------------------------------------------------


async def create_rooms(base_url: str, token: str, count: int, max_participants: int) -> list[str]:
    """Create ``count`` rooms through ``POST /api/rooms``; return their ids."""
    sem = asyncio.Semaphore(16)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def one(i: int) -> str:
            body = {"name": f"bench {i}", "type": "video", "settings": {"maxParticipants": max_participants}}
            async with sem, http.post(f"{base_url}/api/rooms", json=body, headers=headers) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"POST /api/rooms answered {resp.status}: {await resp.text()}")
                return str((await resp.json())["id"])

        return list(await asyncio.gather(*(one(i) for i in range(count))))


async def connect_many(port: int, tokens: list[str], concurrency: int) -> tuple[list[EioClient], list[int]]:
    """Connect and authenticate one client per token, ``concurrency`` at a time."""
    sem = asyncio.Semaphore(concurrency)
    latencies: list[int] = []

    async def one(token: str) -> EioClient:
        async with sem:
            t0 = time.perf_counter_ns()
            client = await connect("127.0.0.1", port, token, timeout=30)
            latencies.append(time.perf_counter_ns() - t0)
            return client

    return list(await asyncio.gather(*(one(t) for t in tokens))), latencies


async def connect_and_join(
    port: int, tokens: list[str], room_ids: list[str], concurrency: int, *, room_size: int = 4, timeout: float = 60
) -> tuple[list[EioClient], list[int]]:
    """Connect client ``i`` with ``tokens[i]`` and join it to ``room_ids[i // room_size]``,
    ``concurrency`` at a time; return the clients and each connect+join's time (ns).

    Raises:
        RuntimeError: a join was refused.
    """
    sem = asyncio.Semaphore(concurrency)
    latencies: list[int] = []

    async def one(i: int) -> EioClient:
        async with sem:
            start = time.perf_counter_ns()
            client = await connect("127.0.0.1", port, tokens[i], timeout=timeout)
            ack = await client.call("join_room", {"roomId": room_ids[i // room_size]}, timeout=timeout)
            if not ack.get("ok"):
                raise RuntimeError(f"join failed: {ack}")
            latencies.append(time.perf_counter_ns() - start)
            return client

    return list(await asyncio.gather(*(one(i) for i in range(len(tokens))))), latencies


async def join_all(clients: list[EioClient], room_ids: list[str], concurrency: int) -> list[Any]:
    """Join ``clients[i]`` to ``room_ids[i]``; return the acks."""
    sem = asyncio.Semaphore(concurrency)

    async def one(client: EioClient, room_id: str) -> Any:
        async with sem:
            return await client.call("join_room", {"roomId": room_id}, timeout=30)

    acks = await asyncio.gather(*(one(c, r) for c, r in zip(clients, room_ids, strict=True)))
    failed = [a for a in acks if not a.get("ok")]
    if failed:
        raise RuntimeError(f"{len(failed)} joins failed, e.g. {failed[0]}")
    return list(acks)


def close_all(clients: list[EioClient]) -> None:
    for client in clients:
        client.close()


@dataclass
class Population:
    """Clients in rooms of ``room_size``, possibly spread over several servers."""

    clients: list[EioClient] = field(default_factory=list)
    rooms: list[list[EioClient]] = field(default_factory=list)


async def populate(cluster: Cluster, secret: str, rooms: int, room_size: int, tag: str) -> Population:
    """``rooms`` rooms of ``room_size`` members; member i of a room lives on server i*n//size."""
    servers = cluster.servers
    owner = mint_token(secret, f"bench-owner-{tag}")
    room_ids = await create_rooms(servers[0].base_url, owner, rooms, room_size)
    pop = Population()
    by_server: list[list[tuple[int, int]]] = [[] for _ in servers]
    for r in range(rooms):
        for m in range(room_size):
            by_server[m * len(servers) // room_size].append((r, m))
    grid: list[list[EioClient | None]] = [[None] * room_size for _ in range(rooms)]
    for s, slots in enumerate(by_server):
        tokens = [mint_token(secret, f"bench-{tag}-{r}-{m}") for r, m in slots]
        clients, _ = await connect_many(servers[s].port, tokens, 100)
        for (r, m), client in zip(slots, clients, strict=True):
            grid[r][m] = client
    for r in range(rooms):
        members = [c for c in grid[r] if c is not None]
        # Join one by one per room so the server sees ordinary traffic; rooms in parallel.
        pop.rooms.append(members)
        pop.clients.extend(members)
    await asyncio.gather(*(_join_room_members(members, room_ids[r]) for r, members in enumerate(pop.rooms)))
    await asyncio.sleep(0.5)
    for client in pop.clients:
        client.inbox.clear()
    return pop


async def _join_room_members(members: list[EioClient], room_id: str) -> None:
    for client in members:
        ack = await client.call("join_room", {"roomId": room_id}, timeout=30)
        if not ack.get("ok"):
            raise RuntimeError(f"join failed: {ack}")


# -- rate-driven measurement ---------------------------------------------------------


class Receiver:
    """Counts deliveries of the current step and records their latency."""

    def __init__(self) -> None:
        self.step = 0
        self.received = 0
        self.stale = 0
        self.errors = 0
        self.samples: list[int] = []

    def reset(self, step: int) -> None:
        self.step, self.received, self.stale, self.errors, self.samples = step, 0, 0, 0, []

    def handler(self) -> Callable[[bytes], None]:
        clock = time.perf_counter_ns
        me = self

        def on_event(payload: bytes) -> None:
            i = payload.find(b"T@")
            if i < 0:
                if payload.startswith(b'42["error"'):
                    me.errors += 1
                return
            j = payload.find(b"|", i)
            step, _, sent = payload[i + 2 : j].partition(b":")
            if int(step) != me.step:
                me.stale += 1
                return
            me.received += 1
            me.samples.append(clock() - int(sent))

        return on_event


async def drive(
    sends: list[tuple[EioClient, bytes, bytes]], rate: float, duration_s: float, step: int
) -> tuple[int, float]:
    """Send ``head + b"<step>:<ns>" + tail`` round-robin over ``sends`` at ``rate``/s."""
    loop = asyncio.get_running_loop()
    clock = time.perf_counter_ns
    total = int(rate * duration_s)
    n, i, sent = len(sends), 0, 0
    t0 = loop.time()
    deadline = t0 + duration_s * 3 + 5
    stamp = b"%d:" % step
    while sent < total and loop.time() < deadline:
        due = min(total, int((loop.time() - t0) * rate) + 1)
        while sent < due:
            client, head, tail = sends[i]
            i += 1
            if i == n:
                i = 0
            client.send(head + stamp + b"%d" % clock() + tail)
            sent += 1
        await asyncio.sleep(0.001)  # uvloop timers have 1 ms resolution
    return sent, loop.time() - t0


async def _drain(receiver: Receiver, expected: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while receiver.received < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def _settle(receiver: Receiver, timeout_s: float) -> None:
    """After an overloaded step: wait until stragglers stop arriving."""
    deadline = time.monotonic() + timeout_s
    last = -1
    while time.monotonic() < deadline:
        seen = receiver.received + receiver.stale
        if seen == last:
            return
        last = seen
        await asyncio.sleep(1.0)


async def sweep(
    cluster: Cluster,
    pop: Population,
    sends: list[tuple[EioClient, bytes, bytes]],
    fan: int,
    rates: list[int],
    duration_s: float,
) -> dict[str, Any]:
    """Run each offered rate for ``duration_s``; stop after two failing steps in a row."""
    receiver = Receiver()
    on_event = receiver.handler()
    for client in pop.clients:
        client.on_event = on_event
    meter = CpuMeter([s.pid for s in cluster.servers])
    # Warm-up (step 0), discarded.
    receiver.reset(0)
    sent, _ = await drive(sends, min(rates[0], 500), 1.0, 0)
    await _drain(receiver, sent * fan, DRAIN_TIMEOUT_S)
    steps: list[dict[str, Any]] = []
    failures = 0
    for n, rate in enumerate(rates, start=1):
        receiver.reset(n)
        gc.collect()
        meter.start()
        sent, elapsed = await drive(sends, rate, duration_s, n)
        cpu = meter.read()
        expected = sent * fan
        await _drain(receiver, expected, DRAIN_TIMEOUT_S)
        stats = percentiles_ms(receiver.samples)
        achieved = sent / elapsed if elapsed else 0.0
        loss = expected - receiver.received
        ok = (
            loss == 0
            and receiver.errors == 0
            and stats["p99_ms"] is not None
            and stats["p99_ms"] <= P99_BUDGET_MS
            and achieved >= 0.97 * rate
        )
        steps.append(
            {
                "offered_per_s": rate,
                "sent": sent,
                "achieved_per_s": round(achieved, 1),
                "deliveries_per_s": round(receiver.received / elapsed, 1) if elapsed else 0.0,
                "expected": expected,
                "received": receiver.received,
                "lost": loss,
                "errors": receiver.errors,
                **stats,
                **cpu,
                "ok": ok,
            }
        )
        print(
            f"    {rate:>6}/s sent {sent} lost {loss} err {receiver.errors} p50 {stats['p50_ms']} "
            f"p99 {stats['p99_ms']} max {stats['max_ms']} ms  server {cpu['server_cpu_pct']}% "
            f"load {cpu['load_cpu_pct']}% runq-wait {cpu['server_runq_wait_pct']}/{cpu['load_runq_wait_pct']}% "
            f"{'ok' if ok else 'FAIL'}",
            flush=True,
        )
        if not ok:
            failures += 1
            await _settle(receiver, SETTLE_TIMEOUT_S)
            severe = stats["p99_ms"] is None or stats["p99_ms"] > 10 * P99_BUDGET_MS or loss > expected // 10
            if failures >= 2 or severe:
                break
        else:
            failures = 0
    passing = [s for s in steps if s["ok"]]
    best = max(passing, key=lambda s: s["offered_per_s"]) if passing else None
    for client in pop.clients:
        client.on_event = None
    return {
        "fan": fan,
        "duration_s": duration_s,
        "steps": steps,
        "max_ok_per_s": best["offered_per_s"] if best else 0,
        "max_ok_deliveries_per_s": best["offered_per_s"] * fan if best else 0,
        # The top of the ladder passed: the server may do more than the kit offered.
        "ladder_top_passed": bool(best) and best["offered_per_s"] == rates[-1],
    }


# -- scenarios -----------------------------------------------------------------------


def relay_sends(pop: Population, cross: bool) -> list[tuple[EioClient, bytes, bytes]]:
    """Targeted `offer`s: member m sends to member m+1 (cross: to member m+size/2)."""
    sends = []
    for members in pop.rooms:
        size = len(members)
        shift = size // 2 if cross else 1
        for m, client in enumerate(members):
            target = members[(m + shift) % size].client_id
            head = b'42["offer",{"to":"%s","sdp":"T@' % target.encode()
            sends.append((client, head, b"|" + SDP_TAIL + b'"}]'))
    return sends


async def scenario_relay(cluster: Cluster, secret: str, quick: bool, cross: bool = False) -> dict[str, Any]:
    rooms = 50 if quick else 100
    pop = await populate(cluster, secret, rooms, 4, "cross" if cross else "relay")
    if cross:
        rates = [500, 1000, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000, 12000, 14000, 16000, 20000, 24000]
    else:
        rates = [1000, 2000, 4000, 6000, 8000, 10000, 12000, 14000, 16000, 18000, 20000, 24000]
        rates += [28000, 32000, 36000, 40000, 44000, 48000]  # the Node baseline goes this far
    try:
        result = await sweep(cluster, pop, relay_sends(pop, cross), 1, rates, 2.0 if quick else 4.0)
    finally:
        close_all(pop.clients)
    result.update({"clients": len(pop.clients), "rooms": rooms, "room_size": 4, "sdp_bytes": len(SDP_TAIL)})
    at_2000 = next((s for s in result["steps"] if s["offered_per_s"] == 2000), None)
    result["p99_ms_at_2000"] = at_2000["p99_ms"] if at_2000 else None
    return result


async def scenario_fanout(cluster: Cluster, secret: str, quick: bool) -> dict[str, Any]:
    rooms = 20 if quick else 40
    pop = await populate(cluster, secret, rooms, 10, "fanout")
    sends = [(c, b'42["candidate",{"candidate":"T@', b"|" + CANDIDATE_TAIL) for c in pop.clients]
    rates = [500, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 10000, 12000, 14000, 16000, 18000, 20000, 24000]
    try:
        result = await sweep(cluster, pop, sends, 9, rates, 2.0 if quick else 4.0)
    finally:
        close_all(pop.clients)
    result.update({"clients": len(pop.clients), "rooms": rooms, "room_size": 10})
    return result


async def scenario_connect(
    cluster: Cluster, secret: str, quick: bool, connections: int, hold_s: float
) -> dict[str, Any]:
    server = cluster.servers[0]
    room_size = 4
    rooms = (connections + room_size - 1) // room_size
    owner = mint_token(secret, "bench-owner-connect")
    room_ids = await create_rooms(server.base_url, owner, rooms, room_size)
    tokens = [mint_token(secret, f"bench-conn-{i}") for i in range(connections)]
    # Warm-up: the first socket imports code and starts the hub; not counted.
    warm, _ = await connect_many(server.port, [mint_token(secret, "bench-warm")], 1)
    await warm[0].call("join_room", {"roomId": room_ids[0]})
    close_all(warm)
    await asyncio.sleep(1.0)
    rss_before = rss_kb(server.pid)
    concurrency = 200
    meter = CpuMeter([server.pid])
    t0 = time.perf_counter()
    clients, latencies = await connect_and_join(server.port, tokens, room_ids, concurrency, room_size=room_size)
    elapsed = time.perf_counter() - t0
    cpu = meter.read()
    for client in clients:
        client.inbox.clear()
    await asyncio.sleep(2.0)
    rss_after = rss_kb(server.pid)
    pings_before = sum(c.pings for c in clients)
    hold_start = time.monotonic()
    await asyncio.sleep(hold_s)
    held = time.monotonic() - hold_start
    dropped = sum(1 for c in clients if c.dropped)
    pings = sum(c.pings for c in clients) - pings_before
    rss_hold = rss_kb(server.pid)
    close_all(clients)
    print(
        f"    {connections} connects+joins in {elapsed:.2f}s = {connections / elapsed:.0f}/s; "
        f"RSS {rss_before}->{rss_after} kB = {(rss_after - rss_before) / connections:.1f} kB/conn; "
        f"hold {held:.0f}s pings {pings} dropped {dropped}",
        flush=True,
    )
    return {
        "connections": connections,
        "concurrency": concurrency,
        "elapsed_s": round(elapsed, 3),
        "connects_per_s": round(connections / elapsed, 1),
        "connect_join": percentiles_ms(latencies),
        **cpu,
        "rss_before_kb": rss_before,
        "rss_after_kb": rss_after,
        "rss_after_hold_kb": rss_hold,
        "rss_per_conn_kb": round((rss_after - rss_before) / connections, 2),
        "hold_s": round(held, 1),
        "pings_answered": pings,
        "dropped": dropped,
    }


async def scenario_joinstorm(cluster: Cluster, secret: str, quick: bool) -> dict[str, Any]:
    server = cluster.servers[0]
    clients_n, rooms, cap = 500, 50, 8
    owner = mint_token(secret, "bench-owner-storm")
    room_ids = await create_rooms(server.base_url, owner, rooms, cap)
    tokens = [mint_token(secret, f"bench-storm-{i}") for i in range(clients_n)]
    clients, _ = await connect_many(server.port, tokens, 100)
    await asyncio.sleep(0.5)
    latencies: list[int] = []
    outcomes: dict[str, int] = {}
    per_room: dict[str, int] = {}

    async def one(i: int) -> None:
        room_id = room_ids[i % rooms]
        start = time.perf_counter_ns()
        ack = await clients[i].call("join_room", {"roomId": room_id}, timeout=60)
        latencies.append(time.perf_counter_ns() - start)
        key = "ok" if ack.get("ok") else ack["error"]["code"]
        outcomes[key] = outcomes.get(key, 0) + 1
        if ack.get("ok"):
            per_room[room_id] = per_room.get(room_id, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(clients_n)))
    elapsed = time.perf_counter() - t0
    live: list[int] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        for room_id in room_ids:
            async with http.get(f"{server.base_url}/api/rooms/{room_id}") as resp:
                live.append(len((await resp.json())["participants"]))
    close_all(clients)
    respected = max(per_room.values(), default=0) <= cap and max(live, default=0) <= cap
    print(
        f"    {clients_n} joins in {elapsed:.2f}s: {outcomes}; cap respected {respected}; {percentiles_ms(latencies)}",
        flush=True,
    )
    return {
        "clients": clients_n,
        "rooms": rooms,
        "cap": cap,
        "elapsed_s": round(elapsed, 3),
        "join": percentiles_ms(latencies),
        "outcomes": outcomes,
        "room_full": outcomes.get("room_full", 0),
        "expected_room_full": clients_n - rooms * cap,
        "max_members_seen": max(live, default=0),
        "cap_respected": respected,
    }


# -- past capacity -------------------------------------------------------------------


async def _readyz_status(base_url: str) -> str:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
        http.get(f"{base_url}/readyz") as resp,
    ):
        body = await resp.json()
        return f"{resp.status} {body.get('status')}"


async def _connect_or_refused(port: int, token: str) -> EioClient | None:
    """A new client, or None when the server refused the session (503/403) or never answered."""
    try:
        return await connect("127.0.0.1", port, token, timeout=10)
    except (ConnectionError, TimeoutError, OSError):
        return None


async def _connect_batch(port: int, tokens: list[str]) -> list[EioClient | None]:
    sem = asyncio.Semaphore(50)

    async def one(token: str) -> EioClient | None:
        async with sem:
            return await _connect_or_refused(port, token)

    return list(await asyncio.gather(*(one(t) for t in tokens)))


async def scenario_overload(cluster: Cluster, secret: str, quick: bool) -> dict[str, Any]:
    """Clients in rooms of 2, each sending 10 offers/s to its peer (issue 11's load), with new
    clients arriving in steps past the server's capacity *while* the established ones send:
    per step, how many new sessions were accepted or refused, what ``/readyz`` said, and the
    established clients' relay latency and loss."""
    server = cluster.servers[0]
    targets = [200, 500, 1000, 1500] if quick else [250, 500, 1000, 1500, 2000, 3000]
    per_client_rate = 10
    duration_s = 6.0
    owner = mint_token(secret, "bench-owner-overload")
    receiver = Receiver()
    on_event = receiver.handler()
    accepted: list[EioClient] = []
    sends: list[tuple[EioClient, bytes, bytes]] = []
    steps: list[dict[str, Any]] = []
    try:
        for n, target in enumerate(targets, start=1):
            receiver.reset(n)
            offered = per_client_rate * len(sends)
            traffic = asyncio.ensure_future(drive(sends, offered, duration_s, n)) if sends else None
            await asyncio.sleep(duration_s / 3)  # the established clients load the loop first
            readyz_before = await _readyz_status(server.base_url)
            wanted = max(0, target - len(accepted))
            tokens = [mint_token(secret, f"bench-over-{n}-{i}") for i in range(wanted)]
            fresh = [c for c in await _connect_batch(server.port, tokens) if c is not None]
            refused = wanted - len(fresh)
            readyz_after = await _readyz_status(server.base_url)
            sent, elapsed = await traffic if traffic is not None else (0, 0.0)
            await _drain(receiver, sent, DRAIN_TIMEOUT_S)
            stats = percentiles_ms(receiver.samples)
            step = {
                "clients_sending": len(sends),
                "offered_per_s": offered,
                "achieved_per_s": round(sent / elapsed, 1) if elapsed else 0.0,
                "sent": sent,
                "lost_after_5s": sent - receiver.received,
                **stats,
                "new_wanted": wanted,
                "new_accepted": len(fresh),
                "new_refused": refused,
                "readyz_before_connects": readyz_before,
                "readyz_after_connects": readyz_after,
            }
            steps.append(step)
            print(
                f"    {len(sends)} clients {offered}/s p50 {stats['p50_ms']} p99 {stats['p99_ms']} ms "
                f"lost {step['lost_after_5s']}; new: {len(fresh)} accepted, {refused} refused; "
                f"readyz {readyz_before} / {readyz_after}",
                flush=True,
            )
            await _settle(receiver, SETTLE_TIMEOUT_S)
            if len(fresh) % 2:
                fresh.pop().close()
            room_ids = await create_rooms(server.base_url, owner, len(fresh) // 2, 2) if fresh else []
            for r, room_id in enumerate(room_ids):
                pair = fresh[2 * r : 2 * r + 2]
                await asyncio.gather(*(c.call("join_room", {"roomId": room_id}, timeout=30) for c in pair))
                for m, client in enumerate(pair):
                    head = b'42["offer",{"to":"%s","sdp":"T@' % pair[1 - m].client_id.encode()
                    sends.append((client, head, b"|" + SDP_TAIL + b'"}]'))
                    client.on_event = on_event
            accepted.extend(fresh)
    finally:
        close_all(accepted)
    return {"per_client_rate": per_client_rate, "duration_s": duration_s, "steps": steps}
