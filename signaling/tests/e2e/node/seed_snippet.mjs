// The seed README's client snippet as written: io(url, {auth: {token}}) with default options
// (HTTP long-polling, then upgrade to WebSocket), `connected`, then `join_room` without ack.
// Usage: node seed_snippet.mjs URL ROOM_ID   (env JWT_SECRET)
import { io } from 'socket.io-client';
import { main, mint, next, print } from './common.mjs';

const [url, roomId] = process.argv.slice(2);

main(async () => {
  const token = mint('agent-fawzi');
  const socket = io(url, {
    auth: {
      token: token
    }
  });
  // Which transport the engine opened with, and the upgrade, as they happen.
  socket.io.on('open', () => {
    print('engine_open', socket.io.engine.transport.name);
    socket.io.engine.on('upgrade', (transport) => print('upgrade', transport.name));
  });
  const connected = await next(socket, 'connected');
  print('connected', { payload: connected, socketId: socket.id });
  const joined = next(socket, 'joined');
  socket.emit('join_room', { roomId });
  print('joined', await joined);
  if (socket.io.engine.transport.name !== 'websocket') {
    await next(socket.io.engine, 'upgrade');
  }
  print('transport', socket.io.engine.transport.name);
  socket.disconnect();
});
