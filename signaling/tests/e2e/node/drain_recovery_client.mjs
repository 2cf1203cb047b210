// A stock socket.io-client (default options but the transports) in a call while its server
// drains, with connection state recovery on (SPEC section 7): it joins a room once, then
// prints every relay it receives; after the draining server closes its transport it must
// come back by itself with `socket.recovered` and the same id, never rejoining.
// Usage: node drain_recovery_client.mjs URL ROOM_ID MODE RELAYS   (env JWT_SECRET)
//   exits 0 after RELAYS offers have arrived; prints each step as one JSON line.
import { io } from 'socket.io-client';
import { call, deadline, mint, print, transportOptions } from './common.mjs';

const [url, roomId, mode, relays] = process.argv.slice(2);
const expected = Number(relays);
deadline(90000);
const socket = io(url, { auth: { token: mint('agent-drain-recovery-' + mode) }, ...transportOptions(mode) });
const received = [];
let connects = 0;

socket.on('connected', async (info) => {
  connects += 1;
  print('connected', { clientId: info.clientId, recovered: info.recovered === true, socketRecovered: socket.recovered, count: connects });
  if (connects === 1) {
    const reply = await call(socket, 'join_room', { roomId });
    print('joined', { ok: reply.ok, clientId: info.clientId, id: socket.id });
  }
});
socket.on('offer', (payload) => {
  received.push(payload.sdp);
  if (received.length === expected) {
    print('done', { received, id: socket.id, connects });
    socket.disconnect();
    process.exit(0);
  }
});
socket.on('user_left', (payload) => print('user_left', payload));
socket.on('disconnect', (reason) => {
  print('disconnect', reason);
  if (reason === 'io server disconnect') {
    print('error', 'the server sent a Socket.IO DISCONNECT: the client will not reconnect');
    process.exit(1);
  }
});
