// socket.io-client with default options (polling, then upgrade), COUNT sockets one after the
// other: for each, whether the upgrade came before the first server PING (a stalled upgrade
// only completes when a PING answers the held poll), the websocket extensions negotiated,
// and an ack'd emit buffered while the upgrade ran.
// Usage: node upgrade_loop.mjs URL COUNT   (env JWT_SECRET)
import { io } from 'socket.io-client';
import { call, deadline, mint, next, print } from './common.mjs';

const [url, count] = process.argv.slice(2);

async function one(index) {
  const socket = io(url, { auth: { token: mint('agent-loop') }, reconnection: false, forceNew: true });
  const order = [];
  socket.io.on('open', () => {
    const engine = socket.io.engine;
    engine.on('upgrade', () => order.push('upgrade'));
    engine.on('ping', () => order.push('ping'));
  });
  await next(socket, 'connected');
  // Emitted at once: buffered by the client while it upgrades, like the seed's join_room.
  const reply = call(socket, 'leave_room', {});
  const engine = socket.io.engine;
  if (engine.transport.name !== 'websocket') {
    await new Promise((resolve) => {
      engine.once('upgrade', resolve);
      engine.once('ping', resolve);
    });
  }
  const ack = await reply;
  const ws = engine.transport.name === 'websocket' ? engine.transport.ws : null;
  print('socket', {
    index,
    first: order[0] || null,
    transport: engine.transport.name,
    extensions: ws ? ws.extensions : null,
    ackCode: ack && ack.error ? ack.error.code : null,
  });
  socket.disconnect();
}

deadline(120000);
try {
  for (let index = 0; index < Number(count); index++) {
    await one(index);
  }
  process.exit(0);
} catch (err) {
  print('error', String(err && err.stack ? err.stack : err));
  process.exit(1);
}
