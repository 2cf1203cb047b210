/**
 * Rooms and who is in them, for the Node baseline (bench/node/server.js).
 *
 * Rooms are created by `POST /api/rooms` on any instance: with Redis they are stored in one
 * hash (`<prefix>:rooms`) so every instance can find them, else in memory. Membership is a
 * view kept by every instance: local joins and leaves are applied at once and told to the
 * other instances with `io.serverSideEmit` (redis adapter), which apply them in turn. That
 * view answers `joined.participants`, the room cap and the `target_not_found` check without
 * a round trip per relay (as the project's membership view does). An instance started
 * later does not learn earlier members; the benchmark never does that.
 */

"use strict";

class Directory {
  /**
   * @param {object|null} redis a connected node-redis client, or null (one instance)
   * @param {string} prefix key prefix of this run (REDIS_PREFIX)
   */
  constructor(redis, prefix) {
    this.redis = redis;
    this.roomsKey = `${prefix}:rooms`;
    this.rooms = new Map(); // roomId -> room (REST shape without participantCount)
    this.members = new Map(); // roomId -> Map(clientId -> participant)
    this.roomOfClient = new Map(); // clientId -> roomId
  }

  /** Store a new room (and in Redis, when there is one). */
  async create(room) {
    this.rooms.set(room.id, room);
    if (this.redis) await this.redis.hSet(this.roomsKey, room.id, JSON.stringify(room));
  }

  /** The room with this id, or null; asks Redis once for a room created elsewhere. */
  async find(roomId) {
    const known = this.rooms.get(roomId);
    if (known || !this.redis) return known || null;
    const raw = await this.redis.hGet(this.roomsKey, roomId);
    if (!raw) return null;
    const room = JSON.parse(raw);
    this.rooms.set(roomId, room);
    return room;
  }

  /** Participants of a room, in join order. */
  participants(roomId) {
    const members = this.members.get(roomId);
    return members ? [...members.values()] : [];
  }

  count(roomId) {
    const members = this.members.get(roomId);
    return members ? members.size : 0;
  }

  /** The room a client (on any instance) is in, or undefined. */
  roomOf(clientId) {
    return this.roomOfClient.get(clientId);
  }

  /** Apply a join (`participant` = {clientId, agentId, joinedAt, muted}). */
  add(roomId, participant) {
    let members = this.members.get(roomId);
    if (!members) {
      members = new Map();
      this.members.set(roomId, members);
    }
    members.set(participant.clientId, participant);
    this.roomOfClient.set(participant.clientId, roomId);
  }

  /** Apply a leave. */
  remove(roomId, clientId) {
    const members = this.members.get(roomId);
    if (members) {
      members.delete(clientId);
      if (members.size === 0) this.members.delete(roomId);
    }
    if (this.roomOfClient.get(clientId) === roomId) this.roomOfClient.delete(clientId);
  }
}

module.exports = { Directory };
