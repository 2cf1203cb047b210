"""``python -m bench.slow_readers [--servers daphne,uvicorn] [--scale 1.0]``: server memory
while clients that stopped reading are relayed to (issue 11).

Scenarios, each on a fresh server (``bench.servers.start_cluster``, memory layer, the
default limits: RATE_LIMIT 200/s, MAX_MESSAGE_BYTES 64 KiB, MAX_BUFFERED_BYTES 2 MB):

- ``ws``: one websocket client joins a room, stops reading its socket and sends a PONG
  every 0.5 s without reading; one sender relays 60 kB offers to it at 180/s for 30 s.
- ``polling``: the same with a polling client that never GETs after its join (it POSTs the
  PONGs), for 20 s.
- ``fanout``: nine such websocket clients in one room and a sender broadcasting 60 kB offers
  at 180/s (under the rate limit) for 10 s: one event, nine copies.

Every 0.25 s the server's RSS is sampled; the report gives RSS before the load, the peak,
the last sample, and when the sender heard each slow client leave (``user_left``). The
sender reads everything; the slow clients use the kernel's default socket buffers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from typing import Any

import aiohttp

from bench.scenarios import create_rooms, mint_token
from bench.servers import rss_kb, start_cluster, stop_cluster
from bench.wsclient import EioClient, connect

SDP = "v=0\r\na=x-filler:" + "x" * 60_000
RATE_PER_S = 180
SAMPLE_S = 0.25
PONG_EVERY_S = 0.5
SCENARIOS = {"ws": (1, 30.0), "polling": (1, 20.0), "fanout": (9, 10.0)}


async def slow_websocket(port: int, token: str, room_id: str) -> tuple[EioClient, asyncio.Task[None]]:
    client = await connect("127.0.0.1", port, token)
    assert (await client.call("join_room", {"roomId": room_id}))["ok"]
    assert client.transport is not None
    client.transport.pause_reading()

    async def pong() -> None:
        while not client.lost.done():
            client.send(b"3")
            await asyncio.sleep(PONG_EVERY_S)

    return client, asyncio.get_running_loop().create_task(pong())


async def slow_polling(
    http: aiohttp.ClientSession, port: int, token: str, room_id: str
) -> tuple[str, asyncio.Task[None]]:
    base = f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling"
    async with http.get(base) as response:
        url = f"{base}&sid={json.loads((await response.text())[1:])['sid']}"

    async def until(prefix: str) -> str:
        while True:
            async with http.get(url) as response:
                for packet in (await response.text()).split("\x1e"):
                    if packet.startswith(prefix):
                        return packet

    await http.post(url, data=("40" + json.dumps({"token": token})).encode())
    client_id = json.loads((await until("40{"))[2:])["sid"]
    await http.post(url, data=("421" + json.dumps(["join_room", {"roomId": room_id}])).encode())
    await until("431[")

    async def pong() -> None:
        while True:
            async with http.post(url, data=b"3") as response:
                if response.status == 400:
                    return
            await asyncio.sleep(PONG_EVERY_S)

    return client_id, asyncio.get_running_loop().create_task(pong())


async def run_scenario(kind: str, scenario: str, scale: float) -> dict[str, Any]:
    count, duration_s = SCENARIOS[scenario]
    duration_s *= scale
    secret = secrets.token_urlsafe(32)
    env = {"RATE_LIMIT": "200", "RATE_LIMIT_BURST": "400", "MAX_PARTICIPANTS": "12"}
    cluster = start_cluster(kind, "memory", jwt_secret=secret, extra_env=env)
    server = cluster.servers[0]
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    tasks: list[asyncio.Task[None]] = []
    clients: list[EioClient] = []
    try:
        (room_id,) = await create_rooms(server.base_url, mint_token(secret, "bench-creator"), 1, 12)
        sender = await connect("127.0.0.1", server.port, mint_token(secret, "bench-sender"))
        clients.append(sender)
        assert (await sender.call("join_room", {"roomId": room_id}))["ok"]
        left_at: dict[str, float] = {}
        started = time.monotonic()

        def on_event(payload: bytes) -> None:
            if payload.startswith(b'42["user_left"'):
                left_at[json.loads(payload[2:])[1]["clientId"]] = round(time.monotonic() - started, 2)

        sender.on_event = on_event
        slow_ids: list[str] = []
        for i in range(count):
            token = mint_token(secret, f"bench-slow-{i}")
            if scenario == "polling":
                client_id, task = await slow_polling(http, server.port, token, room_id)
            else:
                client, task = await slow_websocket(server.port, token, room_id)
                clients.append(client)
                client_id = client.client_id
            slow_ids.append(client_id)
            tasks.append(task)
        await asyncio.sleep(1.0)
        rss_before = rss_kb(server.pid)
        samples: list[int] = []
        started = time.monotonic()
        frames = (
            [b"42" + json.dumps(["offer", {"sdp": SDP}]).encode()]
            if scenario == "fanout"
            else [b"42" + json.dumps(["offer", {"to": slow_id, "sdp": SDP}]).encode() for slow_id in slow_ids]
        )
        sent = 0
        next_sample = started
        while (now := time.monotonic()) - started < duration_s:
            if now >= next_sample:
                samples.append(rss_kb(server.pid))
                next_sample += SAMPLE_S
            sender.send(frames[sent % len(frames)])
            sent += 1
            await asyncio.sleep(max(0.0, started + sent / RATE_PER_S - time.monotonic()))
        await asyncio.sleep(1.0)
        samples.append(rss_kb(server.pid))
        return {
            "server": kind,
            "scenario": scenario,
            "slow_clients": count,
            "seconds": duration_s,
            "offers_sent": sent,
            "offered_mb": round(sent * len(frames[0]) * (count if scenario == "fanout" else 1) / 1e6, 1),
            "rss_before_mb": round(rss_before / 1024, 1),
            "rss_peak_mb": round(max(samples) / 1024, 1),
            "rss_end_mb": round(samples[-1] / 1024, 1),
            "cut_off": len(left_at),
            "cut_off_at_s": sorted(left_at.values()),
        }
    finally:
        for task in tasks:
            task.cancel()
        for client in clients:
            client.close()
        await http.close()
        stop_cluster(cluster)


async def main(servers: list[str], scenarios: list[str], scale: float) -> None:
    for kind in servers:
        for scenario in scenarios:
            result = await run_scenario(kind, scenario, scale)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="daphne,uvicorn")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every duration")
    args = parser.parse_args()
    asyncio.run(main(args.servers.split(","), args.scenarios.split(","), args.scale))
