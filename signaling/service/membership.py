"""Room views: what this instance's sockets know of the rooms they are in (SPEC sections 3, 5).

Presence is the one truth about who is in which room; a :class:`RoomView` is this
instance's working copy for one room, kept provably current:

- the instance subscribes to the room's broadcasts *before* a joiner reads the member
  list from presence, so no announcement can fall between the two;
- a joiner is *pending* until it has its `joined`: whatever reaches it meanwhile is
  buffered, and `user_joined`/`user_left` of members its `joined` already lists (or never
  listed) are dropped when the buffer is flushed;
- ``members`` is everyone the room's local sockets have been told of; an announcement of a
  member already known (or of a departure already told) is not told twice;
- joins, leaves, closes and reconciliation of one room run one at a time on this
  instance (:meth:`Membership.room`); deliveries never wait for that lock;
- ``held`` are the members whose transport is lost and whose session presence holds
  (connection state recovery): what the view delivers to them goes to the view's
  :class:`Keeper` (the recovery module), which keeps it in presence for them.

Never calls presence or the channel layer: the participation and sweeper modules do, and
tell the view what happened.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from signaling.presence import HELD, Participant

if TYPE_CHECKING:
    from signaling.consumers.connection import Connection


class Keeper(Protocol):
    """Keeps packets for held members (implemented by :mod:`signaling.service.recovery`)."""

    async def keep(self, client_id: str, text: str) -> None:
        """A room-wide packet for a held member."""
        ...

    async def keep_or_forward(self, client_id: str, text: str) -> bool:
        """A packet addressed to a held member; False when it has no held session."""
        ...


# How long a departure is remembered, so that a member list read before it cannot bring
# the member back (reconciliation, a joiner's merge).
DEPARTURE_MEMORY_S = 30.0


class Notice(Enum):
    """What a delivered packet says about membership (for a pending joiner's filter)."""

    OTHER = 0
    JOINED = 1
    LEFT = 2


@dataclass(slots=True)
class PendingJoiner:
    """A local socket between its presence join and its `joined`."""

    conn: Connection
    buffered: list[tuple[str, Notice, str]] = field(default_factory=list)


@dataclass(eq=False)
class RoomView:
    """One room as this instance sees it."""

    room_id: str
    members: dict[str, Participant] = field(default_factory=dict)
    local: dict[str, Connection] = field(default_factory=dict)
    pending: dict[str, PendingJoiner] = field(default_factory=dict)
    known_since: dict[str, float] = field(default_factory=dict)
    suspects: set[str] = field(default_factory=set)
    departed_at: dict[str, float] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)
    keeper: Keeper | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    is_subscribed: bool = False
    is_closed: bool = False

    # -- membership knowledge ----------------------------------------------------------

    def learn_joined(self, participant: Participant) -> bool:
        """Record a member; False when it was known already (nothing to tell)."""
        client_id = participant.client_id
        if client_id in self.members:
            return False
        self.members[client_id] = participant
        self.known_since[client_id] = time.monotonic()
        self.departed_at.pop(client_id, None)
        if participant.instance_id == HELD:
            self.held.add(client_id)
        return True

    def learn_moved(self, participant: Participant) -> None:
        """A known member was held, or resumed on some instance: nothing to tell anyone."""
        client_id = participant.client_id
        if client_id not in self.members:
            return
        self.members[client_id] = participant
        if participant.instance_id == HELD:
            self.held.add(client_id)
        else:
            self.held.discard(client_id)

    def learn_left(self, client_id: str) -> Participant | None:
        """Forget a member; None when it was not known (nothing to tell)."""
        participant = self.members.pop(client_id, None)
        self.known_since.pop(client_id, None)
        self.suspects.discard(client_id)
        self.held.discard(client_id)
        now = time.monotonic()
        self.departed_at[client_id] = now
        if len(self.departed_at) > 64:
            self.departed_at = {c: t for c, t in self.departed_at.items() if now - t < DEPARTURE_MEMORY_S}
        return participant

    def departed_since(self, client_id: str, since: float) -> bool:
        """True when the member's departure was learnt at or after ``since``."""
        at = self.departed_at.get(client_id)
        return at is not None and at >= since

    def known_before(self, client_id: str, since: float) -> bool:
        """True when the member was learnt before ``since``."""
        at = self.known_since.get(client_id)
        return at is not None and at < since

    def suspect(self, client_id: str) -> bool:
        """Reconciliation found the member missing from presence: True when it was missing
        on the previous pass too (then it is gone)."""
        if client_id in self.suspects:
            self.suspects.discard(client_id)
            return True
        self.suspects.add(client_id)
        return False

    def unsuspect(self, client_id: str) -> None:
        """The member is present (again)."""
        self.suspects.discard(client_id)

    def is_empty(self) -> bool:
        """No local socket is in the room or joining it."""
        return not self.local and not self.pending

    # -- delivery to local sockets -------------------------------------------------------

    async def deliver(
        self,
        text: str,
        *,
        exclude: str | None = None,
        notice: Notice = Notice.OTHER,
        subject: str = "",
        to_held: bool = True,
    ) -> None:
        """Write a pre-encoded packet to every local member but ``exclude``; buffer it for
        pending joiners; keep it for held members unless ``to_held`` is False (a correction
        of what this instance's sockets know, which is not what a held member knows)."""
        for joiner_id, joiner in self.pending.items():
            if joiner_id != exclude:
                joiner.buffered.append((text, notice, subject))
        for client_id, conn in list(self.local.items()):
            if client_id != exclude:
                await conn.send_sio_text(text)
        if to_held and self.held and self.keeper is not None:
            for client_id in list(self.held):
                if client_id != exclude:
                    await self.keeper.keep(client_id, text)

    async def deliver_to(self, client_id: str, text: str) -> bool:
        """Write a packet to one local member (buffered while it joins); False if not here."""
        conn = self.local.get(client_id)
        if conn is not None:
            await conn.send_sio_text(text)
            return True
        joiner = self.pending.get(client_id)
        if joiner is not None:
            joiner.buffered.append((text, Notice.OTHER, ""))
            return True
        if client_id in self.held and self.keeper is not None:
            return await self.keeper.keep_or_forward(client_id, text)
        return False

    # -- joiners -----------------------------------------------------------------------

    def add_pending(self, client_id: str, conn: Connection) -> None:
        """A local socket starts joining: buffer what reaches it until :meth:`settle`."""
        self.pending[client_id] = PendingJoiner(conn)

    def drop_pending(self, client_id: str) -> None:
        """A join was refused or abandoned: forget the buffered packets."""
        self.pending.pop(client_id, None)

    async def settle(
        self, client_id: str, first: list[str], listed: set[str], *, skip: frozenset[str] = frozenset()
    ) -> None:
        """Send the joiner its ``first`` packets (`joined`, the ack), then what was buffered,
        dropping announcements its `joined` already covered (``listed``: the others it lists)
        and packets in ``skip`` (a resumed session's missed events, sent in ``first``)."""
        joiner = self.pending.pop(client_id)
        conn = joiner.conn
        self.local[client_id] = conn
        for text in first:
            await conn.send_sio_text(text)
        known = set(listed)
        for text, notice, subject in joiner.buffered:
            if text in skip:
                continue
            if notice is Notice.JOINED:
                if subject in known:
                    continue
                known.add(subject)
            elif notice is Notice.LEFT:
                if subject not in known:
                    continue
                known.discard(subject)
            await conn.send_sio_text(text)

    def remove_local(self, client_id: str) -> Connection | None:
        """A local member leaves this view."""
        return self.local.pop(client_id, None)


class Membership:
    """Every room view of this instance, keyed by room id."""

    def __init__(self, keeper: Keeper | None = None) -> None:
        self._views: dict[str, RoomView] = {}
        self._keeper = keeper

    def view(self, room_id: str) -> RoomView | None:
        """The room's view, or None when no local socket is in (or joining) the room."""
        return self._views.get(room_id)

    def room_ids(self) -> list[str]:
        """Rooms with a view here."""
        return list(self._views)

    def locate(self, client_id: str, room_id: str | None) -> RoomView | None:
        """The view in which a local socket is a member or a pending joiner."""
        if room_id is not None:
            view = self._views.get(room_id)
            if view is not None and (client_id in view.local or client_id in view.pending):
                return view
        for view in self._views.values():
            if client_id in view.pending:
                return view
        return None

    @asynccontextmanager
    async def room(self, room_id: str) -> AsyncIterator[RoomView]:
        """Hold the room's view for one membership change on this instance.

        Changes of one room run one at a time; the view exists while anyone holds it or a
        local socket is in it. The caller subscribes it (``is_subscribed``) before reading
        presence; on the way out an empty view is dropped and the caller told to unsubscribe
        through :meth:`release_if_empty`.
        """
        view = self._views.get(room_id)
        if view is None or view.is_closed:
            view = self._views[room_id] = RoomView(room_id, keeper=self._keeper)
        view.users += 1
        try:
            async with view.lock:
                yield view
        finally:
            view.users -= 1

    def release_if_empty(self, view: RoomView) -> bool:
        """Drop a view nobody uses any more; True when the caller must unsubscribe."""
        if view.users > 1 or not view.is_empty():
            return False
        if self._views.get(view.room_id) is view:
            del self._views[view.room_id]
        was_subscribed, view.is_subscribed = view.is_subscribed, False
        return was_subscribed

    def close(self, room_id: str) -> RoomView | None:
        """The room closed: detach its view (its sockets are told by the caller)."""
        view = self._views.pop(room_id, None)
        if view is not None:
            view.is_closed = True
        return view
