// Two socket.io-client peers in one room: full offer / answer / candidate / candidate-end
// exchange, targeted and room-wide. Prints every payload a peer received.
// Usage: node two_peers.mjs URL ROOM_ID MODE   (MODE: default | websocket | polling; env JWT_SECRET)
import { io } from 'socket.io-client';
import { call, main, mint, next, print, transportOptions } from './common.mjs';

const [url, roomId, mode] = process.argv.slice(2);

function connect(agentId) {
  return io(url, { ...transportOptions(mode), forceNew: true, auth: { token: mint(agentId) } });
}

main(async () => {
  const alice = connect('agent-alice');
  const aliceConnected = await next(alice, 'connected');
  print('alice_connected', { payload: aliceConnected, socketId: alice.id });
  print('alice_join_ack', await call(alice, 'join_room', { roomId }));

  const bob = connect('agent-bob');
  const bobConnected = await next(bob, 'connected');
  print('bob_connected', { payload: bobConnected, socketId: bob.id });
  const userJoined = next(alice, 'user_joined');
  const bobJoined = next(bob, 'joined');
  print('bob_join_ack', await call(bob, 'join_room', { roomId }));
  print('bob_joined', await bobJoined);
  print('alice_user_joined', await userJoined);

  const offer = { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n' };
  let got = next(bob, 'offer');
  print('offer_ack', await call(alice, 'offer', { to: bob.id, sdp: offer }));
  print('bob_offer', await got);

  got = next(alice, 'answer');
  print('answer_ack', await call(bob, 'answer', { to: alice.id, sdp: { type: 'answer', sdp: 'v=0\r\n' } }));
  print('alice_answer', await got);

  const candidate = { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 54321 typ host', sdpMid: '0', sdpMLineIndex: 0 };
  got = next(bob, 'candidate');
  print('candidate_ack', await call(alice, 'candidate', { to: bob.id, candidate }));
  print('bob_candidate', await got);

  got = next(bob, 'candidate');
  print('candidate_end_ack', await call(alice, 'candidate-end', { to: bob.id }));
  print('bob_candidate_end', await got);

  got = next(alice, 'candidate');
  print('roomwide_ack', await call(bob, 'candidate', { candidate: 'candidate:2 1 udp 1 127.0.0.1 1 typ host' }));
  print('alice_roomwide_candidate', await got);

  if (mode === 'default') {
    // The default client upgrades in the background: wait for it (bounded) before reporting.
    for (const peer of [alice, bob]) {
      if (peer.io.engine.transport.name !== 'websocket') await next(peer.io.engine, 'upgrade');
    }
  }
  print('transports', { alice: alice.io.engine.transport.name, bob: bob.io.engine.transport.name });
  const left = next(alice, 'user_left');
  bob.disconnect();
  print('alice_user_left', await left);
  alice.disconnect();
});
