"""A hand-driven websocket Socket.IO client that speaks connection state recovery (SPEC
section 7) the way socket.io-client does: it keeps the CONNECT reply's ``pid`` and the last
event offset, and sends both in its next CONNECT's ``auth``. It can also cut its transport
(the TCP connection aborted: no close frame), as a network cut would."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from signaling.tests.fixtures import LiveServer, RawSocketIO


@dataclass
class RecoveringClient:
    server: LiveServer
    agent_id: str
    raw: RawSocketIO | None = None
    sid: str = ""
    pid: str | None = None
    offset: str | None = None
    opened: list[RawSocketIO] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # names of the events ``call`` read past

    async def connect(
        self, server: LiveServer | None = None, *, resume: bool = True, pid: str | None = None
    ) -> dict[str, Any]:
        """Open a websocket and CONNECT (with ``pid``/``offset`` when ``resume``); returns the
        CONNECT reply (``{"sid"[, "pid"]}``) and consumes nothing else."""
        self.server = server or self.server
        self.raw = await RawSocketIO.open(self.server)
        self.opened.append(self.raw)
        opening = await self.raw.next_frame()
        assert isinstance(opening, str) and opening.startswith("0{"), opening
        auth: dict[str, Any] = {"token": self.server.mint(self.agent_id)}
        if resume and (pid or self.pid) is not None:
            auth.update(pid=pid or self.pid, offset=self.offset)
        await self.raw.send("40" + json.dumps(auth))
        accepted = await self.raw.next_frame()
        assert isinstance(accepted, str) and accepted.startswith("40{"), accepted
        reply: dict[str, Any] = json.loads(accepted[2:])
        self.sid, self.pid = reply["sid"], reply.get("pid")
        return reply

    async def event(self, timeout: float = 5.0) -> tuple[str, dict[str, Any], str | None]:
        """The next EVENT: (name, payload, offset or None); acks are skipped. Tracks the offset."""
        assert self.raw is not None
        while True:
            frame = await self.raw.next_frame(timeout)
            assert isinstance(frame, str), frame
            if frame.startswith("42"):
                args = json.loads(frame[2:])
                offset = args[2] if len(args) > 2 and isinstance(args[-1], str) else None
                if offset is not None:
                    self.offset = offset
                return args[0], args[1], offset

    async def until(self, name: str, timeout: float = 5.0) -> dict[str, Any]:
        """Events are read (and offsets tracked) until ``name``; returns its payload."""
        while True:
            event, payload, _ = await self.event(timeout)
            if event == name:
                return payload

    async def call(self, event: str, payload: dict[str, Any], ack_id: int, timeout: float = 5.0) -> Any:
        """Emit with ``ack_id``; events read meanwhile are dropped (offsets tracked, names kept
        in ``dropped``)."""
        assert self.raw is not None
        await self.raw.send(f"42{ack_id}" + json.dumps([event, payload]))
        prefix = f"43{ack_id}"
        while True:
            frame = await self.raw.next_frame(timeout)
            assert isinstance(frame, str), frame
            if frame.startswith(prefix):
                return json.loads(frame[len(prefix) :])[0]
            if frame.startswith("42"):
                args = json.loads(frame[2:])
                self.dropped.append(args[0])
                if len(args) > 2 and isinstance(args[-1], str):
                    self.offset = args[-1]

    async def events_within(self, seconds: float) -> list[str]:
        """The names of the events received within ``seconds`` (waits that long)."""
        assert self.raw is not None
        await asyncio.sleep(seconds)
        names = []
        while not self.raw.frames.empty():
            frame = self.raw.frames.get_nowait()
            if isinstance(frame, str) and frame.startswith("42"):
                names.append(json.loads(frame[2:])[0])
        return names

    def cut(self) -> None:
        """Abort the TCP connection: the server sees its transport lost."""
        assert self.raw is not None
        self.raw.ws.transport.abort()

    async def close(self) -> None:
        for raw in self.opened:
            await raw.close()
