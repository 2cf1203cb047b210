/**
 * The little REST surface the benchmark kit needs from the Node baseline: `GET /healthz`,
 * `POST /api/rooms` (201, the room; Bearer agent token) and `GET /api/rooms/{id}` (with
 * live `participants`). Errors are JSON `{detail, code}` as in SPEC section 2.
 */

"use strict";

const crypto = require("node:crypto");

const MAX_BODY_BYTES = 65536;
const ROOM_TYPES = new Set(["voice", "video"]);

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

function fail(res, status, code, detail) {
  send(res, status, { detail, code });
}

/** The request body parsed as JSON; rejects with a coded error. */
function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(Object.assign(new Error("body too large"), { status: 413, code: "payload_too_large" }));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch {
        reject(Object.assign(new Error("body is not JSON"), { status: 400, code: "invalid_payload" }));
      }
    });
    req.on("error", reject);
  });
}

/** A validated room from a create body, or a string saying what is wrong. */
function roomFromBody(body, agentId, maxParticipants) {
  if (!body || typeof body !== "object" || Array.isArray(body)) return "body must be an object";
  const name = typeof body.name === "string" ? body.name.trim() : "";
  if (name.length < 1 || name.length > 100) return "name: 1-100 characters";
  if (!ROOM_TYPES.has(body.type)) return "type: voice or video";
  const given = body.settings === undefined ? {} : body.settings;
  if (!given || typeof given !== "object" || Array.isArray(given)) return "settings must be an object";
  const cap = given.maxParticipants === undefined ? maxParticipants : given.maxParticipants;
  if (!Number.isInteger(cap) || cap < 1 || cap > maxParticipants) return `maxParticipants: 1-${maxParticipants}`;
  return {
    id: `r_${crypto.randomBytes(8).toString("hex")}`,
    name,
    type: body.type,
    settings: {
      muteOnEntry: given.muteOnEntry === true,
      allowRecording: given.allowRecording === true,
      maxDuration: Number.isInteger(given.maxDuration) ? given.maxDuration : null,
      maxParticipants: cap,
    },
    createdBy: agentId,
    createdAt: new Date().toISOString(),
  };
}

/**
 * The HTTP handler (socket.io answers `/socket.io/` itself before this is called).
 * @param {{directory, verify: function(string): object, maxParticipants: number}} ctx
 */
function handler(ctx) {
  return async (req, res) => {
    try {
      const path = req.url.split("?", 1)[0];
      if (path === "/healthz" && req.method === "GET") return send(res, 200, { status: "ok" });
      if (path === "/api/rooms" && req.method === "POST") {
        const auth = req.headers.authorization || "";
        const claims = auth.startsWith("Bearer ") ? ctx.verify(auth.slice(7)) : null;
        if (!claims || claims.error) return fail(res, 401, "not_authenticated", "Bearer agent token required");
        const room = roomFromBody(await readJson(req), claims.agentId, ctx.maxParticipants);
        if (typeof room === "string") return fail(res, 400, "invalid_payload", room);
        await ctx.directory.create(room);
        return send(res, 201, { ...room, participantCount: 0 });
      }
      const match = /^\/api\/rooms\/([A-Za-z0-9_-]{1,100})$/.exec(path);
      if (match && req.method === "GET") {
        const room = await ctx.directory.find(match[1]);
        if (!room) return fail(res, 404, "not_found", "no such room");
        const participants = ctx.directory.participants(room.id);
        return send(res, 200, { ...room, participantCount: participants.length, participants });
      }
      return fail(res, 404, "not_found", "no such endpoint");
    } catch (err) {
      if (err && err.status) return fail(res, err.status, err.code, err.message);
      console.error("request failed:", err);
      return fail(res, 500, "server_error", "internal error");
    }
  };
}

module.exports = { handler };
