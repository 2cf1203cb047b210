// Two peers negotiate a call through the signaling server: offer, answer, ICE candidates.
// Run: SERVER=http://127.0.0.1:8080 JWT_SECRET=... ROOM=r_... node examples/two-peers.mjs
// (In a browser the SDP and candidates come from RTCPeerConnection; here they are stand-ins.)
import { io } from 'socket.io-client';
import jwt from 'jsonwebtoken';

const server = process.env.SERVER ?? 'http://localhost:8080';
const roomId = process.env.ROOM;
const mint = (agentId) => jwt.sign({ agentId }, process.env.JWT_SECRET, { expiresIn: '1h' });

function peer(agentId) {
  const socket = io(server, { auth: { token: mint(agentId) } });
  socket.on('connect_error', (err) => { console.error(agentId, 'refused:', err.message); process.exit(1); });
  socket.on('error', (err) => console.error(agentId, 'error:', err.code, err.message));
  return socket;
}

const alice = peer('agent-alice');
const bob = peer('agent-bob');

// Bob answers every offer, then sends his candidates and says he has no more.
bob.on('offer', (data) => {
  console.log('bob got an offer from', data.agentId);
  bob.emit('answer', { to: data.from, sdp: { type: 'answer', sdp: 'v=0 (bob)' } });
  bob.emit('candidate', { to: data.from, candidate: { candidate: 'candidate:1 1 udp 2113937151 192.0.2.2 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 } });
  bob.emit('candidate-end', { to: data.from });
});

// Alice is in the room first; when Bob joins she offers to him.
alice.on('user_joined', (data) => {
  console.log('alice sees', data.agentId, 'join');
  alice.emit('offer', { to: data.clientId, sdp: { type: 'offer', sdp: 'v=0 (alice)' } });
  alice.emit('candidate', { to: data.clientId, candidate: { candidate: 'candidate:1 1 udp 2113937151 192.0.2.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 } });
});
alice.on('answer', (data) => console.log('alice got an answer from', data.agentId, data.sdp.type));

let done = 0;
function candidate(who) {
  return (data) => {
    if (data.candidate === null) {
      console.log(who, 'has all candidates of', data.agentId);
      if (++done === 1) { alice.emit('leave_room', {}); alice.disconnect(); bob.disconnect(); }
    }
  };
}
alice.on('candidate', candidate('alice'));
bob.on('candidate', candidate('bob'));

alice.on('connected', () => {
  alice.emit('join_room', { roomId }, (ack) => {
    if (!ack.ok) { console.error('alice could not join:', ack.error.code); process.exit(1); }
    bob.emit('join_room', { roomId }, (reply) => console.log('bob joined; already there:', reply.participants.map((p) => p.agentId)));
  });
});
