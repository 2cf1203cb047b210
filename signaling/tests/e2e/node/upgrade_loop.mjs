// socket.io-client with default options (polling, then upgrade), COUNT sockets one after the
// other: for each, whether the upgrade came before the first server PING (a stalled upgrade
// only completes when a PING answers the held poll), the websocket extensions negotiated,
// and an ack'd emit buffered while the upgrade ran.
// With WS_DELAY_MS, the clients go through a TCP relay that delays what the server sends on
// websocket connections by that much (a websocket slower than the polling requests, as on
// real networks): the probe's NOOP then reaches the client before "3probe", the client polls
// once more before pausing, and that poll is the one the server must not hold.
// Usage: node upgrade_loop.mjs URL COUNT [WS_DELAY_MS]   (env JWT_SECRET)
import net from 'node:net';
import { io } from 'socket.io-client';
import { call, deadline, mint, next, print } from './common.mjs';

const [target, count, wsDelay] = process.argv.slice(2);

// A relay on 127.0.0.1 to `target`, delaying server -> client bytes of websocket connections.
function relay(delayMs) {
  const { hostname, port } = new URL(target);
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    let isWebsocket = null;
    client.on('data', (chunk) => {
      if (isWebsocket === null) isWebsocket = chunk.toString('latin1').includes('transport=websocket');
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (isWebsocket) setTimeout(() => client.write(chunk), delayMs);
      else client.write(chunk);
    });
    const end = () => { client.destroy(); upstream.destroy(); };
    client.on('close', end);
    upstream.on('close', () => setTimeout(end, isWebsocket ? delayMs : 0));
    client.on('error', end);
    upstream.on('error', end);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    server.unref();
    resolve(`http://127.0.0.1:${server.address().port}`);
  }));
}

const url = wsDelay ? await relay(Number(wsDelay)) : target;

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
