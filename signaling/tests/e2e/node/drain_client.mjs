// A stock socket.io-client, default options but the transports, that joins a room and rejoins
// it after every reconnect (as an application does on `connected`), printing each step.
// Used by test_draining.py: a draining server must make it reconnect by itself, so a Socket.IO
// DISCONNECT ("io server disconnect": the client would stop) fails the script.
// Usage: node drain_client.mjs URL ROOM_ID MODE (default|websocket)
import { io } from 'socket.io-client';
import { call, deadline, mint, print, transportOptions } from './common.mjs';

const [url, roomId, mode] = process.argv.slice(2);
deadline(90000);
const socket = io(url, { auth: { token: mint('agent-drain-node-' + mode) }, ...transportOptions(mode) });
let connects = 0;

socket.on('connected', async (info) => {
  connects += 1;
  print('connected', { clientId: info.clientId, count: connects });
  const reply = await call(socket, 'join_room', { roomId });
  print('joined', { ok: reply.ok, clientId: info.clientId, transport: socket.io.engine.transport.name, count: connects });
  if (connects === 2) {
    socket.disconnect();
    process.exit(0);
  }
});
socket.on('disconnect', (reason) => {
  print('disconnect', reason);
  if (reason === 'io server disconnect') {
    print('error', 'the server sent a Socket.IO DISCONNECT: the client will not reconnect');
    process.exit(1);
  }
});
socket.on('connect_error', (err) => print('connect_error', err.message));
