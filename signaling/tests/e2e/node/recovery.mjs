// Connection state recovery with the stock socket.io-client (SPEC section 7).
// Usage: node recovery.mjs URL ROOM_ID MODE SCENARIO   (env JWT_SECRET)
//   MODE: default (polling, then upgrade) | websocket
//   SCENARIO: resume  - alice's transport is cut; bob relays to her while she is away; she
//                       comes back by herself and resumes
//             expire  - alice's transport is cut and she does not come back
//             left    - alice leaves her room, then her transport is cut: a fresh session
//             closed  - alice disconnects herself, then connects again: a fresh session
// The transport is cut by terminating the client's underlying socket (no close frame, no
// Engine.IO close): to the server, a lost network. Event arguments are printed without the
// offset the server appends (socket.io-client passes it to handlers as the last argument).
import { io } from 'socket.io-client';
import { call, deadline, mint, next, print, transportOptions, WAIT_MS } from './common.mjs';

const [url, roomId, mode, scenario] = process.argv.slice(2);
const GAP_MS = 3000; // alice's reconnection delay: bob's relays land while she is away

function connect(agentId, extra = {}) {
  return io(url, { ...transportOptions(mode), forceNew: true, auth: { token: mint(agentId) }, ...extra });
}

// Every event a socket receives, in order, with the trailing offset split off.
function record(socket) {
  const seen = [];
  socket.onAny((event, ...args) => {
    const offset = typeof args[args.length - 1] === 'string' ? args.pop() : null;
    seen.push({ event, args, hasOffset: offset !== null });
  });
  return seen;
}

// next() resolves to the argument list when there are several (an event's payload and its
// offset; a disconnect's reason and details): the first is the payload.
function first(value) {
  return Array.isArray(value) ? value[0] : value;
}

function cut(socket) {
  const transport = socket.io.engine.transport;
  if (transport.ws) transport.ws.terminate();
  else throw new Error(`cannot cut a ${transport.name} transport`);
}

async function rest(path) {
  const response = await fetch(url + path);
  return { status: response.status, body: await response.json() };
}

async function until(predicate, what, ms = WAIT_MS) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > end) throw new Error(`${what} not seen within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function presence(listing, id) {
  const entry = listing.body.participants.find((p) => p.clientId === id);
  return entry === undefined ? 'absent' : entry.connected;
}

async function upgraded(socket) {
  if (mode === 'default' && socket.io.engine.transport.name !== 'websocket') await next(socket.io.engine, 'upgrade');
}

async function main() {
  deadline(30000);
  const alice = connect('agent-alice', { reconnectionDelay: GAP_MS, randomizationFactor: 0, reconnection: scenario === 'resume' || scenario === 'left' });
  const aliceSeen = record(alice);
  const connected = first(await next(alice, 'connected'));
  print('alice_connected', { payload: connected, id: alice.id, recovered: alice.recovered });
  await call(alice, 'join_room', { roomId });
  const bob = connect('agent-bob', { transports: ['websocket'] });
  await next(bob, 'connected');
  const bobJoin = await call(bob, 'join_room', { roomId });
  print('bob_join', { participants: bobJoin.participants.map((p) => p.clientId) });
  const bobSeen = record(bob);
  await upgraded(alice);
  // One relay before the cut: alice's last offset is a relay's.
  let got = next(alice, 'offer');
  await call(bob, 'offer', { to: alice.id, sdp: 'sdp-0' });
  await got;
  const aliceId = alice.id;
  print('before_cut', { transport: alice.io.engine.transport.name, id: aliceId });

  if (scenario === 'left') {
    const left = next(bob, 'user_left');
    await call(alice, 'leave_room', { roomId });
    await left;
  }
  if (scenario === 'closed') {
    const left = next(bob, 'user_left');
    alice.disconnect();
    print('bob_user_left', first(await left));
    alice.connect();
    const again = first(await next(alice, 'connected'));
    print('alice_again', { payload: again, id: alice.id, recovered: alice.recovered, sameId: alice.id === aliceId });
    return { alice, bob };
  }

  const disconnected = next(alice, 'disconnect');
  cut(alice);
  print('alice_disconnect', first(await disconnected));

  if (scenario === 'left') {
    const again = first(await next(alice, 'connected', GAP_MS + WAIT_MS));
    print('alice_again', { payload: again, id: alice.id, recovered: alice.recovered, sameId: alice.id === aliceId });
    return { alice, bob };
  }

  // The server noticed: alice is held (listed, not connected) and counted as a participant.
  const away = await until(async () => {
    const listing = await rest(`/api/rooms/${roomId}`);
    return presence(listing, aliceId) === false ? listing : null;
  }, 'alice listed with connected: false');
  print('rest_away', away.body.participants.map((p) => ({ clientId: p.clientId, connected: p.connected })));
  print('stats_away', (await rest('/api/stats')).body);

  if (scenario === 'expire') {
    print('bob_user_left', first(await next(bob, 'user_left', 15000)));
    print('rest_after', (await rest(`/api/rooms/${roomId}`)).body.participants.map((p) => p.clientId));
    print('bob_seen', bobSeen.map((e) => e.event));
    return { alice, bob };
  }

  // While alice is away: targeted relays to her are acked, and a room-wide one.
  const acks = [];
  acks.push(await call(bob, 'offer', { to: aliceId, sdp: 'sdp-1' }));
  acks.push(await call(bob, 'candidate', { to: aliceId, candidate: 'cand-2' }));
  acks.push(await call(bob, 'candidate', { candidate: 'cand-3' }));
  acks.push(await call(bob, 'candidate', { to: aliceId, candidate: 'cand-4' }));
  print('acks_while_away', acks);
  const marker = aliceSeen.length;

  const reconnected = await next(alice, 'connect', GAP_MS + WAIT_MS);
  print('alice_reconnect', { id: alice.id, recovered: alice.recovered, sameId: alice.id === aliceId });
  await until(() => aliceSeen.filter((e, i) => i >= marker && e.event === 'candidate').length >= 3, 'the missed candidates');
  // After the resume: a new relay arrives after the missed ones.
  got = next(alice, 'answer');
  await call(bob, 'answer', { to: aliceId, sdp: 'sdp-5' });
  await got;
  print('alice_after', aliceSeen.slice(marker));
  const back = await rest(`/api/rooms/${roomId}`);
  print('rest_back', back.body.participants.map((p) => ({ clientId: p.clientId, connected: p.connected })));
  print('bob_seen', bobSeen.map((e) => e.event));
  void reconnected;
  return { alice, bob };
}

main()
  .then(({ alice, bob }) => {
    alice.disconnect();
    bob.disconnect();
    process.exit(0);
  })
  .catch((err) => {
    print('error', String(err && err.stack ? err.stack : err));
    process.exit(1);
  });
