/**
 * socket.io 4 on Node with the events of SPEC section 3: the benchmark baseline.
 *
 * `node bench/node/server.js` (after `npm ci --prefix bench/node`). Environment, as the
 * project reads it: PORT (3000), HOST (127.0.0.1), JWT_SECRET (required), HEARTBEAT_INTERVAL
 * (30000 ms), HEARTBEAT_TIMEOUT (20000 ms), MAX_PARTICIPANTS (50), MAX_PAYLOAD (1000000);
 * REDIS_URL and REDIS_PREFIX: several instances over `@socket.io/redis-adapter`.
 *
 * Implemented: HS256 agent tokens in `auth.token` (also `?token=`, `Authorization: Bearer`)
 * with `missing_token` / `invalid_token` / `token_expired`; `connected`; `join_room` (ack =
 * `joined` + ok, `user_joined` to the others, room cap `room_full`); `leave_room`; relays of
 * `offer` / `answer` / `candidate` / `candidate-end`, targeted through `io.to(clientId)` or to
 * the room, payload = sender's object minus `to` plus `from`, `agentId`, `roomId`;
 * `user_left` on leave/disconnect; acks `{ok}` or `{ok:false,error}`, else `error` events.
 * Left out (not on the benchmark's path): rate limits, MAX_MESSAGE_BYTES, join tokens,
 * moderation, room expiry, stats.
 */

"use strict";

const crypto = require("node:crypto");
const http = require("node:http");
const jwt = require("jsonwebtoken");
const { Server } = require("socket.io");
const { Directory } = require("./directory");
const rest = require("./rest");

const env = process.env;
const intEnv = (name, fallback) => (env[name] ? Number.parseInt(env[name], 10) : fallback);
const PORT = intEnv("PORT", 3000);
const HOST = env.HOST || "127.0.0.1";
const SECRET = env.JWT_SECRET;
// A KeyObject, made once: given a string, jsonwebtoken 9 first tries it as a PEM public key
// (createPublicKey throws and builds an Error with its stack) on every verify.
const KEY = SECRET ? crypto.createSecretKey(Buffer.from(SECRET, "utf8")) : null;
const MAX_PARTICIPANTS = intEnv("MAX_PARTICIPANTS", 50);
const RELAYS = new Set(["offer", "answer", "candidate", "candidate-end"]);
const KNOWN = new Set(["join_room", "leave_room", ...RELAYS]);

/** Claims of a valid agent token, or `{error}` with the CONNECT_ERROR message. */
function verify(token) {
  if (typeof token !== "string" || token === "") return { error: "missing_token" };
  let claims;
  try {
    claims = jwt.verify(token, KEY, { algorithms: ["HS256"] });
  } catch (err) {
    return { error: err.name === "TokenExpiredError" ? "token_expired" : "invalid_token" };
  }
  const agentId = claims.agentId;
  if (typeof claims.exp !== "number" || typeof agentId !== "string" || agentId.length < 1 || agentId.length > 128) {
    return { error: "invalid_token" };
  }
  return claims;
}

class Failure extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

/** The event handlers of one io server, sharing ``directory``. */
function signaling(io, directory, clustered) {
  const tell = (op, roomId, participant) => {
    if (clustered) io.serverSideEmit("member", op, roomId, participant);
  };
  io.on("member", (op, roomId, participant) => {
    if (op === "add") directory.add(roomId, participant);
    else directory.remove(roomId, participant.clientId);
  });

  function leave(socket, reason) {
    const roomId = socket.data.roomId;
    const participant = { clientId: socket.id, agentId: socket.data.agentId };
    socket.data.roomId = null;
    directory.remove(roomId, socket.id);
    tell("remove", roomId, participant);
    socket.to(roomId).emit("user_left", { roomId, ...participant, reason });
    socket.leave(roomId);
  }

  async function joinRoom(socket, payload) {
    if (!isObject(payload) || typeof payload.roomId !== "string" || payload.roomId === "") {
      throw new Failure("invalid_payload", "roomId must be a non-empty string");
    }
    const roomId = payload.roomId;
    const room = await directory.find(roomId);
    if (!room) throw new Failure("room_not_found", "no such room");
    const clientId = socket.id;
    const agentId = socket.data.agentId;
    if (socket.data.roomId !== roomId) {
      if (directory.count(roomId) >= room.settings.maxParticipants) throw new Failure("room_full", "room is full");
      if (socket.data.roomId) leave(socket, "left");
      const participant = { clientId, agentId, joinedAt: new Date().toISOString(), muted: room.settings.muteOnEntry };
      directory.add(roomId, participant);
      tell("add", roomId, participant);
      socket.data.roomId = roomId;
      socket.join(roomId);
      socket.to(roomId).emit("user_joined", { roomId, clientId, agentId, muted: participant.muted });
    }
    const everyone = directory.participants(roomId);
    const self = everyone.find((p) => p.clientId === clientId);
    const joined = {
      roomId,
      clientId,
      agentId,
      muted: self ? self.muted : false,
      room: { ...room, participantCount: everyone.length },
      participants: everyone.filter((p) => p.clientId !== clientId),
    };
    socket.emit("joined", joined);
    return joined;
  }

  function relay(socket, event, payload) {
    if (!isObject(payload)) throw new Failure("invalid_payload", "payload must be an object");
    if ((event === "offer" || event === "answer") && typeof payload.sdp !== "string" && !isObject(payload.sdp)) {
      throw new Failure("invalid_payload", "sdp must be a string or an object");
    }
    if (event === "candidate" && !("candidate" in payload)) throw new Failure("invalid_payload", "candidate missing");
    const { to, ...rest } = payload;
    if (to !== undefined && typeof to !== "string") throw new Failure("invalid_payload", "to must be a string");
    const roomId = socket.data.roomId;
    if (!roomId) throw new Failure("not_in_room", "join a room first");
    const out = { ...rest, from: socket.id, agentId: socket.data.agentId, roomId };
    let name = event;
    if (event === "candidate-end") {
      name = "candidate";
      out.candidate = null;
    }
    if (to === undefined) {
      socket.to(roomId).emit(name, out);
    } else {
      if (to === socket.id || directory.roomOf(to) !== roomId) throw new Failure("target_not_found", "no such peer");
      io.to(to).emit(name, out);
    }
    return {};
  }

  io.use((socket, next) => {
    const hs = socket.handshake;
    const header = hs.headers.authorization || "";
    const token = (hs.auth && hs.auth.token) || hs.query.token || (header.startsWith("Bearer ") ? header.slice(7) : "");
    const claims = verify(token);
    if (claims.error) return next(new Error(claims.error));
    socket.data.agentId = claims.agentId;
    socket.data.roomId = null;
    return next();
  });

  io.on("connection", (socket) => {
    const answer = (event, ack, work) => {
      Promise.resolve()
        .then(work)
        .then(
          (result) => ack && ack({ ok: true, ...result }),
          (err) => {
            if (!(err instanceof Failure)) console.error(`${event} failed:`, err);
            const error = err instanceof Failure ? err : new Failure("server_error", "internal error");
            if (ack) ack({ ok: false, error: { code: error.code, message: error.message } });
            else socket.emit("error", { code: error.code, message: error.message, event });
          },
        );
    };
    socket.onAny((event, ...args) => {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
      const payload = args[0];
      if (RELAYS.has(event)) {
        try {
          relay(socket, event, payload);
          if (ack) ack({ ok: true });
        } catch (err) {
          answer(event, ack, () => Promise.reject(err));
        }
      } else if (event === "join_room") {
        answer(event, ack, () => joinRoom(socket, payload));
      } else if (event === "leave_room") {
        answer(event, ack, () => {
          if (!socket.data.roomId) throw new Failure("not_in_room", "not in a room");
          leave(socket, "left");
          return {};
        });
      } else if (!KNOWN.has(event)) {
        answer(event, ack, () => Promise.reject(new Failure("unknown_event", `unknown event ${event}`)));
      }
    });
    socket.on("disconnecting", (reason) => {
      if (socket.data.roomId) leave(socket, reason === "ping timeout" ? "timeout" : "disconnected");
    });
    socket.emit("connected", { clientId: socket.id, agentId: socket.data.agentId });
  });
}

async function main() {
  if (!SECRET) {
    console.error("JWT_SECRET is required");
    process.exit(2);
  }
  let redis = null;
  let sub = null;
  if (env.REDIS_URL) {
    const { createClient } = require("redis");
    redis = createClient({ url: env.REDIS_URL });
    sub = redis.duplicate();
    for (const client of [redis, sub]) client.on("error", (err) => console.error("redis:", err.message));
    await Promise.all([redis.connect(), sub.connect()]);
  }
  const directory = new Directory(redis, env.REDIS_PREFIX || "bench");
  // The REST handler first: socket.io wraps the request listeners present when it attaches.
  const httpServer = http.createServer(rest.handler({ directory, verify, maxParticipants: MAX_PARTICIPANTS }));
  const io = new Server(httpServer, {
    pingInterval: intEnv("HEARTBEAT_INTERVAL", 30000),
    pingTimeout: intEnv("HEARTBEAT_TIMEOUT", 20000),
    maxHttpBufferSize: intEnv("MAX_PAYLOAD", 1000000),
    serveClient: false,
  });
  if (redis) {
    const { createAdapter } = require("@socket.io/redis-adapter");
    io.adapter(createAdapter(redis, sub, { key: `${env.REDIS_PREFIX || "bench"}:sio` }));
  }
  signaling(io, directory, Boolean(redis));
  const stop = () => {
    io.close();
    process.exit(0); // after io.close(): exits even with sockets still open (--cpu-prof writes its file)
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  httpServer.listen(PORT, HOST, () => console.log(`socket.io baseline on http://${HOST}:${PORT}`));
}

main().catch((err) => {
  console.error("startup failed:", err.message);
  process.exit(1);
});
