"""Presence: who is connected, who is in which room, on which instance (SPEC sections 3-5).

Owns the cluster-wide truth about live participants. Two stores share one async interface:
:class:`MemoryPresence` (no ``REDIS_URL``: one process) and :class:`RedisPresence` (every
instance shares it). Every mutation is one atomic operation: the join cap is checked and the
member added in one Lua script, so the cap holds when many instances join at the same instant.

Moderation (SPEC section 9) lives here too, for the same reason: a room's bans (agent id ->
end, epoch ms) are checked inside the join script, a ban removes every socket of that agent
in the same operation that records it, and the ``duplicateIdentity`` policy (``reject``,
``replace``) is decided in the join script: a ban and a concurrent join, or two replacing
joins, cannot both win. The database holds the durable copy of the bans: a join into a room
whose bans presence has not loaded (a new room here, a Redis restart) answers
``BANS_UNKNOWN`` and the service loads them (:meth:`PresenceStore.load_bans`) first.

Webhook ``seq`` numbers (SPEC section 10) are reserved here too: each room has an event
counter, and a join, leave, ban (kick) or close asked for events takes its numbers in the
same atomic operation as the change. So a room's events are numbered in the order the
changes happened cluster-wide (the order clients saw), before the change is acked, and
the outbox rows can be written afterwards, in any order. The counter starts from the
database's last ``seq`` (:meth:`PresenceStore.load_seq`; a join answers ``SEQ_UNKNOWN``
until then); an operation on a room whose counter presence lost (a Redis restart) reserves
nothing (0) and the outbox numbers that event itself.

Never imports Django models or the channel layer; the service layer is its only writer.
Instance ids are channel-layer channel names: the instance's inbox.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any, Protocol

from redis.asyncio import BlockingConnectionPool, Redis

from signaling.redis_options import retry_options


@dataclass(frozen=True, slots=True)
class Participant:
    """One socket in one room."""

    client_id: str
    agent_id: str
    joined_at: str
    is_muted: bool
    instance_id: str

    def to_wire(self) -> dict[str, Any]:
        """The SPEC participant shape."""
        return {
            "clientId": self.client_id,
            "agentId": self.agent_id,
            "joinedAt": self.joined_at,
            "muted": self.is_muted,
        }

    def dumps(self) -> str:
        """Compact storage form."""
        return json.dumps(
            [self.client_id, self.agent_id, self.joined_at, self.is_muted, self.instance_id],
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, raw: str | bytes) -> Participant:
        """Inverse of :meth:`dumps`."""
        client_id, agent_id, joined_at, is_muted, instance_id = json.loads(raw)
        return cls(client_id, agent_id, joined_at, bool(is_muted), instance_id)


class JoinStatus(IntEnum):
    """Outcome of an atomic join."""

    FULL = 0
    JOINED = 1
    ALREADY = 2
    CLOSED = 3
    BANNED = 4
    DUPLICATE = 5
    BANS_UNKNOWN = 6
    SEQ_UNKNOWN = 7  # webhook events asked for, but presence does not hold the room's event counter


# ``duplicate`` argument of :meth:`PresenceStore.join` (the room's ``duplicateIdentity``).
DUPLICATE_ALLOW = "allow"
DUPLICATE_REJECT = "reject"
DUPLICATE_REPLACE = "replace"


@dataclass(frozen=True, slots=True)
class JoinOutcome:
    """What :meth:`PresenceStore.join` saw: status, every member after the join, and the
    room's membership version after it (0 when nothing changed); ``replaced``: the sockets
    of the same agent that this join took the seat of (``duplicateIdentity: replace``).

    With webhook events asked for: ``seq`` is the first of the webhook ``seq`` numbers the
    join reserved, one ``participant.left`` per replaced socket, then ``room.started`` when
    ``is_room_start`` (the room's first join), then ``participant.joined``; 0: none reserved.
    """

    status: JoinStatus
    members: list[Participant]
    version: int = 0
    replaced: list[Participant] = field(default_factory=list)
    seq: int = 0
    is_room_start: bool = False


@dataclass(frozen=True, slots=True)
class BanOutcome:
    """A ban recorded: the sockets of that agent it removed, how many remain, the version."""

    removed: list[Participant]
    remaining: int
    version: int = 0
    seq: int = 0  # the first webhook seq reserved: kicked, left for each removed socket in turn


@dataclass(frozen=True, slots=True)
class LeaveOutcome:
    """A member removed from a room, how many remain, and the room's membership version.

    The version counts every join and leave of the room; occupancy marks written to the
    database carry it so that marks from different instances cannot overtake each other.
    ``seq``: the first webhook ``seq`` the leave reserved (0: none, or the counter unknown).
    """

    participant: Participant
    remaining: int
    version: int = 0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class PresenceStats:
    """Cluster-wide counts for /api/stats."""

    connections: int
    participants: int
    active_rooms: int
    instances: int


class PresenceStore(Protocol):
    """The operations the service layer needs; each is atomic."""

    async def register_instance(self, instance_id: str, ttl_ms: int) -> bool: ...
    async def unregister_instance(self, instance_id: str) -> None: ...
    async def add_connection(self, instance_id: str, client_id: str, agent_id: str) -> None: ...
    async def remove_connection(self, instance_id: str, client_id: str) -> None: ...
    async def sync_connections(self, instance_id: str, connections: dict[str, str]) -> None: ...
    async def join(
        self,
        room_id: str,
        participant: Participant,
        cap: int,
        *,
        duplicate: str = ...,
        now_ms: int = ...,
        with_events: bool = ...,
    ) -> JoinOutcome:
        """Join atomically: closed room, bans (when ``now_ms`` > 0; 0: a member re-asserted by
        reconciliation, admitted already), ``duplicate`` policy, cap; with ``with_events``,
        reserve the webhook ``seq`` numbers of the join's events (``SEQ_UNKNOWN`` when the
        room's counter is not loaded)."""
        ...

    async def load_bans(self, room_id: str, bans: dict[str, int]) -> None: ...
    async def load_seq(self, room_id: str, last_seq: int) -> None: ...
    async def reserve_seq(self, room_id: str, count: int) -> int: ...
    async def ban(self, room_id: str, agent_id: str, until_ms: int, *, events_each: int = ...) -> BanOutcome: ...
    async def lift_ban(self, room_id: str, agent_id: str) -> None: ...
    async def set_muted(self, room_id: str, client_id: str, is_muted: bool) -> Participant | None: ...
    async def leave(self, room_id: str, client_id: str, *, events: int = ...) -> LeaveOutcome | None: ...
    async def members(self, room_id: str) -> list[Participant]: ...
    async def member(self, room_id: str, client_id: str) -> Participant | None: ...
    async def memberships(self, instance_id: str) -> list[tuple[str, str]]: ...
    async def counts(self, room_ids: list[str]) -> dict[str, int]: ...
    async def mark_closed(self, room_id: str) -> list[Participant]: ...
    async def mark_closed_if_empty(self, room_id: str) -> int: ...
    async def dead_instances(self) -> list[str]: ...
    async def reap_instance(self, instance_id: str, *, events: int = ...) -> list[tuple[str, LeaveOutcome]]: ...
    async def stats(self) -> PresenceStats: ...
    async def ping(self) -> None: ...


class MemoryPresence:
    """Single-process presence: plain dicts, mutated only from the event loop."""

    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, Participant]] = {}
        self._closed: set[str] = set()
        self._connections: dict[str, dict[str, str]] = {}
        self._instances: set[str] = set()
        self._versions: dict[str, int] = {}
        self._bans: dict[str, dict[str, int]] = {}
        self._bans_loaded: set[str] = set()
        self._seqs: dict[str, int] = {}

    def _bump(self, room_id: str) -> int:
        version = self._versions.get(room_id, 0) + 1
        self._versions[room_id] = version
        return version

    def _reserve(self, room_id: str, count: int) -> int:
        if count <= 0 or room_id not in self._seqs:
            return 0
        first = self._seqs[room_id] + 1
        self._seqs[room_id] += count
        return first

    async def register_instance(self, instance_id: str, ttl_ms: int) -> bool:
        """Mark the instance alive; True when it was not registered (new, or reaped)."""
        is_new = instance_id not in self._instances
        self._instances.add(instance_id)
        self._connections.setdefault(instance_id, {})
        return is_new

    async def unregister_instance(self, instance_id: str) -> None:
        self._instances.discard(instance_id)
        self._connections.pop(instance_id, None)

    async def add_connection(self, instance_id: str, client_id: str, agent_id: str) -> None:
        self._connections.setdefault(instance_id, {})[client_id] = agent_id

    async def remove_connection(self, instance_id: str, client_id: str) -> None:
        self._connections.get(instance_id, {}).pop(client_id, None)

    async def sync_connections(self, instance_id: str, connections: dict[str, str]) -> None:
        """Make the instance's connection list exactly ``connections`` (client id -> agent id)."""
        self._connections[instance_id] = dict(connections)

    async def join(
        self,
        room_id: str,
        participant: Participant,
        cap: int,
        *,
        duplicate: str = DUPLICATE_ALLOW,
        now_ms: int = 0,
        with_events: bool = False,
    ) -> JoinOutcome:
        if room_id in self._closed:
            return JoinOutcome(JoinStatus.CLOSED, [])
        room = self._rooms.get(room_id, {})
        if participant.client_id in room:
            return JoinOutcome(JoinStatus.ALREADY, list(room.values()))
        if now_ms:
            if room_id not in self._bans_loaded:
                return JoinOutcome(JoinStatus.BANS_UNKNOWN, [])
            if self._bans.get(room_id, {}).get(participant.agent_id, 0) > now_ms:
                return JoinOutcome(JoinStatus.BANNED, [])
        if with_events and room_id not in self._seqs:
            return JoinOutcome(JoinStatus.SEQ_UNKNOWN, [])
        same = [p for p in room.values() if p.agent_id == participant.agent_id]
        if same and duplicate == DUPLICATE_REJECT:
            return JoinOutcome(JoinStatus.DUPLICATE, [])
        replaced = same if duplicate == DUPLICATE_REPLACE else []
        if len(room) - len(replaced) >= cap:
            return JoinOutcome(JoinStatus.FULL, list(room.values()))
        room = self._rooms.setdefault(room_id, room)
        for old in replaced:
            del room[old.client_id]
        room[participant.client_id] = participant
        seq, is_room_start = 0, False
        if with_events:
            # seq 1 is room.created: a counter at 1 or below has seen no join yet
            is_room_start = self._seqs[room_id] <= 1
            seq = self._reserve(room_id, len(replaced) + 1 + is_room_start)
        return JoinOutcome(JoinStatus.JOINED, list(room.values()), self._bump(room_id), replaced, seq, is_room_start)

    async def load_bans(self, room_id: str, bans: dict[str, int]) -> None:
        """Put the database's bans of a room into presence (a ban recorded meanwhile wins)."""
        current = self._bans.setdefault(room_id, {})
        for agent_id, until_ms in bans.items():
            current.setdefault(agent_id, until_ms)
        self._bans_loaded.add(room_id)

    async def load_seq(self, room_id: str, last_seq: int) -> None:
        """Give presence the room's last webhook ``seq`` from the database (a counter held already wins)."""
        self._seqs.setdefault(room_id, last_seq)

    async def reserve_seq(self, room_id: str, count: int) -> int:
        """Reserve ``count`` webhook ``seq`` numbers: the first, or 0 when the counter is not held."""
        return self._reserve(room_id, count)

    async def ban(self, room_id: str, agent_id: str, until_ms: int, *, events_each: int = 0) -> BanOutcome:
        """Record a ban and remove every socket of that agent from the room, atomically."""
        self._bans.setdefault(room_id, {})[agent_id] = until_ms
        room = self._rooms.get(room_id, {})
        removed = [room.pop(p.client_id) for p in list(room.values()) if p.agent_id == agent_id]
        if not removed:
            return BanOutcome([], len(room))
        if not room:
            self._rooms.pop(room_id, None)
        return BanOutcome(removed, len(room), self._bump(room_id), self._reserve(room_id, events_each * len(removed)))

    async def lift_ban(self, room_id: str, agent_id: str) -> None:
        """Drop a ban (its row is gone already)."""
        self._bans.get(room_id, {}).pop(agent_id, None)

    async def set_muted(self, room_id: str, client_id: str, is_muted: bool) -> Participant | None:
        """Change a member's muted flag; None when it is not in the room."""
        room = self._rooms.get(room_id, {})
        current = room.get(client_id)
        if current is None:
            return None
        room[client_id] = updated = replace(current, is_muted=is_muted)
        return updated

    async def leave(self, room_id: str, client_id: str, *, events: int = 0) -> LeaveOutcome | None:
        room = self._rooms.get(room_id)
        if room is None or client_id not in room:
            return None
        participant = room.pop(client_id)
        if not room:
            del self._rooms[room_id]
        return LeaveOutcome(participant, len(room), self._bump(room_id), self._reserve(room_id, events))

    async def members(self, room_id: str) -> list[Participant]:
        return list(self._rooms.get(room_id, {}).values())

    async def member(self, room_id: str, client_id: str) -> Participant | None:
        return self._rooms.get(room_id, {}).get(client_id)

    async def memberships(self, instance_id: str) -> list[tuple[str, str]]:
        return [
            (room_id, client_id)
            for room_id, room in self._rooms.items()
            for client_id, p in room.items()
            if p.instance_id == instance_id
        ]

    async def counts(self, room_ids: list[str]) -> dict[str, int]:
        return {room_id: len(self._rooms.get(room_id, ())) for room_id in room_ids}

    async def mark_closed(self, room_id: str) -> list[Participant]:
        self._closed.add(room_id)
        return list(self._rooms.pop(room_id, {}).values())

    async def mark_closed_if_empty(self, room_id: str) -> int:
        """Close the room if nobody is in it: 0 when closed (or closed already), else its version."""
        if self._rooms.get(room_id):
            return self._versions.get(room_id, 0) or 1
        self._closed.add(room_id)
        return 0

    async def dead_instances(self) -> list[str]:
        return []

    async def reap_instance(self, instance_id: str, *, events: int = 0) -> list[tuple[str, LeaveOutcome]]:
        return []

    async def stats(self) -> PresenceStats:
        return PresenceStats(
            connections=sum(len(c) for c in self._connections.values()),
            participants=sum(len(r) for r in self._rooms.values()),
            active_rooms=len(self._rooms),
            instances=len(self._instances),
        )

    async def ping(self) -> None:
        return None


# KEYS: room hash, active-rooms set, instance memberships set, closed set, version key,
# bans hash, bans-loaded marker, webhook seq counter.
# ARGV: client id, participant, cap, room id, agent id, duplicate policy, now (epoch ms),
# memberships prefix, with events ("1" or "0").
_JOIN_LUA = """
if redis.call('SISMEMBER', KEYS[4], ARGV[4]) == 1 then return {3} end
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return {2, redis.call('HVALS', KEYS[1])} end
if tonumber(ARGV[7]) > 0 then
  if redis.call('EXISTS', KEYS[7]) == 0 then return {6} end
  local ban = redis.call('HGET', KEYS[6], ARGV[5])
  if ban and tonumber(ban) > tonumber(ARGV[7]) then return {4} end
end
if ARGV[9] == '1' and redis.call('EXISTS', KEYS[8]) == 0 then return {7} end
local replaced = {}
if ARGV[6] ~= 'allow' then
  for _, raw in ipairs(redis.call('HVALS', KEYS[1])) do
    local p = cjson.decode(raw)
    if p[2] == ARGV[5] then
      if ARGV[6] == 'reject' then return {5} end
      table.insert(replaced, raw)
    end
  end
end
if redis.call('HLEN', KEYS[1]) - #replaced >= tonumber(ARGV[3]) then
  return {0, redis.call('HVALS', KEYS[1])}
end
for _, raw in ipairs(replaced) do
  local p = cjson.decode(raw)
  redis.call('HDEL', KEYS[1], p[1])
  redis.call('SREM', ARGV[8] .. p[5], ARGV[4] .. ' ' .. p[1])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[4] .. ' ' .. ARGV[1])
local version = redis.call('INCR', KEYS[5])
local seq, started = 0, 0
if ARGV[9] == '1' then
  -- seq 1 is room.created: a counter at 1 or below has seen no join yet
  if tonumber(redis.call('GET', KEYS[8])) <= 1 then started = 1 end
  local n = #replaced + 1 + started
  seq = redis.call('INCRBY', KEYS[8], n) - n + 1
end
return {1, redis.call('HVALS', KEYS[1]), version, replaced, seq, started}
"""

# KEYS: webhook seq counter. ARGV: how many. The first reserved, or 0 without a counter.
_RESERVE_SEQ_LUA = """
local n = tonumber(ARGV[1])
if n <= 0 or redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('INCRBY', KEYS[1], n) - n + 1
"""

# KEYS: bans hash, bans-loaded marker. ARGV: agent id, until (epoch ms), ... (pairs).
_LOAD_BANS_LUA = """
for i = 1, #ARGV, 2 do redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('SET', KEYS[2], '1')
return 1
"""

# KEYS: room hash, active-rooms set, version key, bans hash, webhook seq counter.
# ARGV: agent id, until (epoch ms), room id, memberships prefix, webhook events per removed socket.
_BAN_LUA = """
redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])
local removed = {}
for _, raw in ipairs(redis.call('HVALS', KEYS[1])) do
  local p = cjson.decode(raw)
  if p[2] == ARGV[1] then
    redis.call('HDEL', KEYS[1], p[1])
    redis.call('SREM', ARGV[4] .. p[5], ARGV[3] .. ' ' .. p[1])
    table.insert(removed, raw)
  end
end
local n = redis.call('HLEN', KEYS[1])
if #removed == 0 then return {removed, n, 0, 0} end
if n == 0 then redis.call('SREM', KEYS[2], ARGV[3]) end
local seq = 0
local events = tonumber(ARGV[5]) * #removed
if events > 0 and redis.call('EXISTS', KEYS[5]) == 1 then
  seq = redis.call('INCRBY', KEYS[5], events) - events + 1
end
return {removed, n, redis.call('INCR', KEYS[3]), seq}
"""

# KEYS: room hash. ARGV: client id, muted ("1" or "0").
_SET_MUTED_LUA = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
local p = cjson.decode(raw)
p[4] = ARGV[2] == '1'
local updated = cjson.encode(p)
redis.call('HSET', KEYS[1], ARGV[1], updated)
return updated
"""

# KEYS: room hash, active-rooms set, version key, webhook seq counter.
# ARGV: client id, room id, memberships prefix, webhook events to reserve.
_LEAVE_LUA = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
local instance = cjson.decode(raw)[5]
redis.call('SREM', ARGV[3] .. instance, ARGV[2] .. ' ' .. ARGV[1])
local n = redis.call('HLEN', KEYS[1])
if n == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
local version = redis.call('INCR', KEYS[3])
local seq = 0
local events = tonumber(ARGV[4])
if events > 0 and redis.call('EXISTS', KEYS[4]) == 1 then
  seq = redis.call('INCRBY', KEYS[4], events) - events + 1
end
return {raw, n, version, seq}
"""

# KEYS: room hash, closed set, version key. ARGV: room id.
# 0: closed (joins refused from now on); otherwise the version of the occupied room.
_MARK_CLOSED_IF_EMPTY_LUA = """
if redis.call('HLEN', KEYS[1]) > 0 then
  local version = tonumber(redis.call('GET', KEYS[3]) or '1')
  if version < 1 then version = 1 end
  return version
end
redis.call('SADD', KEYS[2], ARGV[1])
return 0
"""

# KEYS: connections hash. ARGV: client id, agent id, ... (pairs).
_SYNC_CONNECTIONS_LUA = """
redis.call('DEL', KEYS[1])
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return #ARGV / 2
"""

# KEYS: room hash, active-rooms set, closed set. ARGV: room id, instance-memberships prefix.
_CLOSE_LUA = """
redis.call('SADD', KEYS[3], ARGV[1])
local all = redis.call('HVALS', KEYS[1])
for _, raw in ipairs(all) do
  local p = cjson.decode(raw)
  redis.call('SREM', ARGV[2] .. p[5], ARGV[1] .. ' ' .. p[1])
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return all
"""

# KEYS: active-rooms set. ARGV: room-hash prefix.
_PARTICIPANTS_LUA = """
local total = 0
for _, room in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  total = total + redis.call('HLEN', ARGV[1] .. room)
end
return total
"""


REDIS_MAX_CONNECTIONS = 32
REDIS_POOL_TIMEOUT_S = 10.0


class RedisPresence:
    """Cluster presence in Redis; keys under ``<prefix>:``; every mutation one script."""

    def __init__(self, url: str, *, prefix: str = "sig") -> None:
        # A bounded pool that waits for a free connection: a connect storm queues its
        # presence writes instead of failing them with "Too many connections".
        pool = BlockingConnectionPool.from_url(
            url, max_connections=REDIS_MAX_CONNECTIONS, timeout=REDIS_POOL_TIMEOUT_S, **retry_options()
        )
        self._pool = pool
        self._redis: Redis = Redis(connection_pool=pool)
        self._p = prefix
        self._join = self._redis.register_script(_JOIN_LUA)
        self._leave = self._redis.register_script(_LEAVE_LUA)
        self._close = self._redis.register_script(_CLOSE_LUA)
        self._close_if_empty = self._redis.register_script(_MARK_CLOSED_IF_EMPTY_LUA)
        self._sync_connections = self._redis.register_script(_SYNC_CONNECTIONS_LUA)
        self._participants = self._redis.register_script(_PARTICIPANTS_LUA)
        self._load_bans = self._redis.register_script(_LOAD_BANS_LUA)
        self._ban = self._redis.register_script(_BAN_LUA)
        self._set_muted = self._redis.register_script(_SET_MUTED_LUA)
        self._reserve_seq = self._redis.register_script(_RESERVE_SEQ_LUA)

    def _room(self, room_id: str) -> str:
        return f"{self._p}:room:{room_id}"

    def _version(self, room_id: str) -> str:
        return f"{self._p}:version:{room_id}"

    def _seq(self, room_id: str) -> str:
        return f"{self._p}:seq:{room_id}"

    def _bans(self, room_id: str) -> str:
        return f"{self._p}:bans:{room_id}"

    def _bans_loaded(self, room_id: str) -> str:
        return f"{self._p}:bansloaded:{room_id}"

    @property
    def _active(self) -> str:
        return f"{self._p}:active"

    @property
    def _closed(self) -> str:
        return f"{self._p}:closed"

    @property
    def _instances(self) -> str:
        return f"{self._p}:instances"

    def _alive(self, instance_id: str) -> str:
        return f"{self._p}:alive:{instance_id}"

    def _conns(self, instance_id: str) -> str:
        return f"{self._p}:conns:{instance_id}"

    def _memberships(self, instance_id: str) -> str:
        return f"{self._p}:memberships:{instance_id}"

    async def register_instance(self, instance_id: str, ttl_ms: int) -> bool:
        """Refresh the liveness key; True when the instance was not registered (new, or reaped)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._alive(instance_id), "1", px=ttl_ms)
            pipe.sadd(self._instances, instance_id)
            _, added = await pipe.execute()
        return bool(added)

    async def unregister_instance(self, instance_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._alive(instance_id), self._conns(instance_id))
            pipe.srem(self._instances, instance_id)
            await pipe.execute()

    async def add_connection(self, instance_id: str, client_id: str, agent_id: str) -> None:
        await self._redis.hset(self._conns(instance_id), client_id, agent_id)

    async def remove_connection(self, instance_id: str, client_id: str) -> None:
        await self._redis.hdel(self._conns(instance_id), client_id)

    async def sync_connections(self, instance_id: str, connections: dict[str, str]) -> None:
        """Make the instance's connection list exactly ``connections`` (client id -> agent id)."""
        args = [item for pair in connections.items() for item in pair]
        await self._sync_connections(keys=[self._conns(instance_id)], args=args)

    async def join(
        self,
        room_id: str,
        participant: Participant,
        cap: int,
        *,
        duplicate: str = DUPLICATE_ALLOW,
        now_ms: int = 0,
        with_events: bool = False,
    ) -> JoinOutcome:
        keys = [
            self._room(room_id),
            self._active,
            self._memberships(participant.instance_id),
            self._closed,
            self._version(room_id),
            self._bans(room_id),
            self._bans_loaded(room_id),
            self._seq(room_id),
        ]
        args = [
            participant.client_id,
            participant.dumps(),
            cap,
            room_id,
            participant.agent_id,
            duplicate,
            now_ms,
            f"{self._p}:memberships:",
            "1" if with_events else "0",
        ]
        reply = await self._join(keys=keys, args=args)
        status = JoinStatus(int(reply[0]))
        members = [Participant.loads(raw) for raw in reply[1]] if len(reply) > 1 else []
        version = int(reply[2]) if len(reply) > 2 else 0
        replaced = [Participant.loads(raw) for raw in reply[3]] if len(reply) > 3 else []
        seq, is_room_start = (int(reply[4]), bool(int(reply[5]))) if len(reply) > 5 else (0, False)
        return JoinOutcome(status, members, version, replaced, seq, is_room_start)

    async def load_bans(self, room_id: str, bans: dict[str, int]) -> None:
        """Put the database's bans of a room into presence (a ban recorded meanwhile wins)."""
        args = [item for pair in bans.items() for item in pair]
        await self._load_bans(keys=[self._bans(room_id), self._bans_loaded(room_id)], args=args)

    async def load_seq(self, room_id: str, last_seq: int) -> None:
        """Give presence the room's last webhook ``seq`` from the database (a counter held already wins)."""
        await self._redis.set(self._seq(room_id), last_seq, nx=True)

    async def reserve_seq(self, room_id: str, count: int) -> int:
        """Reserve ``count`` webhook ``seq`` numbers: the first, or 0 when the counter is not held."""
        return int(await self._reserve_seq(keys=[self._seq(room_id)], args=[count]))

    async def ban(self, room_id: str, agent_id: str, until_ms: int, *, events_each: int = 0) -> BanOutcome:
        """Record a ban and remove every socket of that agent from the room, atomically."""
        reply = await self._ban(
            keys=[
                self._room(room_id),
                self._active,
                self._version(room_id),
                self._bans(room_id),
                self._seq(room_id),
            ],
            args=[agent_id, until_ms, room_id, f"{self._p}:memberships:", events_each],
        )
        removed = [Participant.loads(raw) for raw in reply[0]]
        return BanOutcome(removed, int(reply[1]), int(reply[2]), int(reply[3]))

    async def lift_ban(self, room_id: str, agent_id: str) -> None:
        """Drop a ban (its row is gone already)."""
        await self._redis.hdel(self._bans(room_id), agent_id)

    async def set_muted(self, room_id: str, client_id: str, is_muted: bool) -> Participant | None:
        """Change a member's muted flag; None when it is not in the room."""
        raw = await self._set_muted(keys=[self._room(room_id)], args=[client_id, "1" if is_muted else "0"])
        return None if not raw else Participant.loads(raw)

    async def leave(self, room_id: str, client_id: str, *, events: int = 0) -> LeaveOutcome | None:
        reply = await self._leave(
            keys=[self._room(room_id), self._active, self._version(room_id), self._seq(room_id)],
            args=[client_id, room_id, f"{self._p}:memberships:", events],
        )
        if not reply:
            return None
        return LeaveOutcome(Participant.loads(reply[0]), int(reply[1]), int(reply[2]), int(reply[3]))

    async def members(self, room_id: str) -> list[Participant]:
        return [Participant.loads(raw) for raw in await self._redis.hvals(self._room(room_id))]

    async def member(self, room_id: str, client_id: str) -> Participant | None:
        raw = await self._redis.hget(self._room(room_id), client_id)
        return None if raw is None else Participant.loads(raw)

    async def memberships(self, instance_id: str) -> list[tuple[str, str]]:
        """Every (room id, client id) that presence holds for the instance."""
        entries = await self._redis.smembers(self._memberships(instance_id))
        return [tuple(entry.decode().split(" ", 1)) for entry in entries]  # type: ignore[misc]

    async def counts(self, room_ids: list[str]) -> dict[str, int]:
        if not room_ids:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for room_id in room_ids:
                pipe.hlen(self._room(room_id))
            replies = await pipe.execute()
        return {room_id: int(n) for room_id, n in zip(room_ids, replies, strict=True)}

    async def mark_closed(self, room_id: str) -> list[Participant]:
        reply = await self._close(
            keys=[self._room(room_id), self._active, self._closed],
            args=[room_id, f"{self._p}:memberships:"],
        )
        return [Participant.loads(raw) for raw in reply]

    async def mark_closed_if_empty(self, room_id: str) -> int:
        """Close the room if nobody is in it: 0 when closed (or closed already), else its version."""
        keys = [self._room(room_id), self._closed, self._version(room_id)]
        return int(await self._close_if_empty(keys=keys, args=[room_id]))

    async def dead_instances(self) -> list[str]:
        instances = [i.decode() for i in await self._redis.smembers(self._instances)]
        if not instances:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for instance_id in instances:
                pipe.exists(self._alive(instance_id))
            alive = await pipe.execute()
        return [i for i, is_alive in zip(instances, alive, strict=True) if not is_alive]

    async def reap_instance(self, instance_id: str, *, events: int = 0) -> list[tuple[str, LeaveOutcome]]:
        """Remove a dead instance's members; only the caller that wins the claim reaps."""
        claimed = await self._redis.srem(self._instances, instance_id)
        if not claimed:
            return []
        left: list[tuple[str, LeaveOutcome]] = []
        for entry in await self._redis.smembers(self._memberships(instance_id)):
            room_id, client_id = entry.decode().split(" ", 1)
            outcome = await self.leave(room_id, client_id, events=events)
            if outcome is not None:
                left.append((room_id, outcome))
        await self._redis.delete(self._memberships(instance_id), self._conns(instance_id))
        return left

    async def stats(self) -> PresenceStats:
        instances = [i.decode() for i in await self._redis.smembers(self._instances)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for instance_id in instances:
                pipe.exists(self._alive(instance_id))
                pipe.hlen(self._conns(instance_id))
            pipe.scard(self._active)
            replies = await pipe.execute()
        participants = await self._participants(keys=[self._active], args=[f"{self._p}:room:"])
        live = [(replies[2 * i], replies[2 * i + 1]) for i in range(len(instances))]
        return PresenceStats(
            connections=sum(int(n) for alive, n in live if alive),
            participants=int(participants),
            active_rooms=int(replies[-1]),
            instances=sum(1 for alive, _ in live if alive),
        )

    async def ping(self) -> None:
        await self._redis.ping()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()
        await self._pool.disconnect()
