/**
 * Browser demo of the signaling server: a WebRTC mesh call (SPEC section 3).
 *
 * Talks to the server only through the public contract: the official socket.io-client
 * (the global `io`, served from node_modules by staticfiles), `join_room` / `leave_room`,
 * and the `offer` / `answer` / `candidate` / `candidate-end` relays. Media flows peer to
 * peer over standard RTCPeerConnections, one per remote participant, with trickle ICE.
 *
 * Negotiation: the newcomer makes the first offer to every member listed in
 * `joined.participants`; members wait for it (they never offer on `user_joined`).
 * Later renegotiation (an ICE restart) follows the perfect-negotiation pattern, where the
 * peer with the larger clientId is the polite one.
 *
 * ICE (SPEC section 8): every RTCPeerConnection uses the `iceServers` of the `connected`
 * event (STUN, and TURN with short-lived credentials). The "Relay only" switch (`?relay=1`)
 * sets `iceTransportPolicy: 'relay'`, so a call connects only through the TURN server; each
 * tile shows the selected candidate pair's types (host, srflx, prflx, relay).
 *
 * Automation hooks (see docs/demo.md): `?autojoin=1`, `?relay=1`; remote tiles carry
 * data-agent-id, data-client-id, data-peer-state and data-candidate-type;
 * `window.demoStats()`, `window.demoState()`, `window.demoLastError` and the #error element
 * (data-error-code).
 */

const config = JSON.parse(document.getElementById('demo-config').textContent);
const params = new URLSearchParams(window.location.search);

const STATS_INTERVAL_MS = 500;
const ACK_TIMEOUT_MS = 10000;
const LEAVE_TIMEOUT_MS = 2000;
// getStats() audioLevel is 0..1 (linear); above this a tile is drawn as speaking.
const SPEAKING_LEVEL = 0.02;

// What a person reads for each machine code (SPEC sections 1 and 3, plus the page's own).
const ERROR_TEXT = {
  missing_token: 'No token was given. Paste an agent token (or mint one in development mode) and try again.',
  invalid_token: 'The server refused this token: it is not a valid token for this server.',
  token_expired: 'This token has expired. Get a fresh token and try again.',
  room_full: 'This room is full.',
  room_closed: 'This room has been closed.',
  room_not_found: 'There is no room with this ID.',
  forbidden: 'Your token does not allow you to join this room.',
  invalid_payload: 'The server did not understand the request (is the room ID right?).',
  rate_limited: 'Too many messages were sent too quickly; slow down.',
  payload_too_large: 'A signaling message was too large for the server.',
  missing_room: 'Enter a room ID first.',
  join_timeout: 'The server did not answer the join request. Try again.',
  server_unreachable: 'Cannot reach the signaling server.',
  server_disconnected: 'The server ended the connection.',
  client_missing: 'The socket.io client could not be loaded (run `npm ci` on the server).',
  media_unavailable: 'Camera and microphone are unavailable; you can still see and hear the others.',
  insecure_context: 'Camera and microphone need a secure page: use https, or http://127.0.0.1 / localhost.',
  mint_failed: 'Could not mint a token.',
  create_room_failed: 'Could not create the room.',
  turn_refused: 'The TURN server refused the credentials this server issued (is TURN_SECRET the same on both?).',
};

// icecandidateerror codes that mean the TURN server refused our credentials (RFC 5389 401, 403).
const TURN_AUTH_ERRORS = new Set([401, 403]);

const CLOSE_TEXT = {
  deleted: 'The room was closed by its owner. The call has ended.',
  max_duration: 'The room reached its maximum duration and was closed. The call has ended.',
  expired: 'The room expired and was closed. The call has ended.',
};

// Relay failures that only mean a peer left while our messages were in flight.
const QUIET_RELAY_ERRORS = new Set(['target_not_found', 'not_in_room']);
const RELAY_EVENTS = new Set(['offer', 'answer', 'candidate', 'candidate-end']);

const ui = {
  status: document.getElementById('status'),
  error: document.getElementById('error'),
  joinPanel: document.getElementById('join-panel'),
  joinForm: document.getElementById('join-form'),
  roomInput: document.getElementById('room-input'),
  tokenInput: document.getElementById('token-input'),
  joinButton: document.getElementById('join-button'),
  callPanel: document.getElementById('call-panel'),
  roomLabel: document.getElementById('room-label'),
  agentLabel: document.getElementById('agent-label'),
  tiles: document.getElementById('tiles'),
  muteButton: document.getElementById('mute-button'),
  cameraButton: document.getElementById('camera-button'),
  leaveButton: document.getElementById('leave-button'),
  // Present only in development mode.
  mintForm: document.getElementById('mint-form'),
  agentInput: document.getElementById('agent-input'),
  roomForm: document.getElementById('room-form'),
  roomNameInput: document.getElementById('room-name-input'),
  roomTypeInput: document.getElementById('room-type-input'),
  invite: document.getElementById('invite'),
  inviteLink: document.getElementById('invite-link'),
  relayInput: document.getElementById('relay-input'),
  share: document.getElementById('share'),
  shareLink: document.getElementById('share-link'),
  shareTokenNote: document.getElementById('share-token-note'),
  alone: document.getElementById('alone'),
  iceInfo: document.getElementById('ice-info'),
};

const call = {
  phase: 'idle',
  socket: null,
  clientId: null,
  agentId: null,
  roomId: null,
  token: null,
  localStream: null,
  localTile: null,
  peers: new Map(),
  // Room events that arrive while our join is in flight, replayed once we are in (see roomEvent).
  early: [],
  statsTimer: null,
  audioContext: null,
  localAnalyser: null,
  // From `connected` (SPEC section 8); `relayOnly` is the switch's value at join time.
  iceServers: [],
  relayOnly: false,
  iceErrors: [],
  // Every lost connection, for the automation hooks: socket.io-client's reason and details.
  disconnects: [],
};

window.demoLastError = null;

// ---------------------------------------------------------------------------- page state

function setPhase(phase) {
  call.phase = phase;
  document.body.dataset.phase = phase;
}

function setStatus(text) {
  ui.status.textContent = text;
}

function showError(code, detail, text) {
  const message = text || ERROR_TEXT[code] || detail || `Error: ${code}`;
  window.demoLastError = { code, message, detail: detail || null, at: new Date().toISOString() };
  ui.error.textContent = message;
  ui.error.dataset.errorCode = code;
  ui.error.hidden = false;
  console.warn('demo error', code, detail || '');
}

function clearError() {
  window.demoLastError = null;
  ui.error.textContent = '';
  ui.error.dataset.errorCode = '';
  ui.error.hidden = true;
}

function send(event, payload) {
  if (call.socket && call.socket.connected) {
    call.socket.emit(event, payload);
  }
}

function plainDescription(description) {
  return { type: description.type, sdp: description.sdp };
}

// ---------------------------------------------------------------------------- tiles

function makeTile({ label, clientId, agentId, isLocal }) {
  const tile = document.createElement('figure');
  tile.className = isLocal ? 'tile local' : 'tile peer';
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.muted = isLocal; // never play our own microphone back
  const placeholder = document.createElement('div');
  placeholder.className = 'placeholder';
  placeholder.textContent = 'Camera off';
  const caption = document.createElement('figcaption');
  const name = document.createElement('span');
  name.className = 'name';
  name.textContent = label;
  const mutedBadge = document.createElement('span');
  mutedBadge.className = 'muted-badge';
  mutedBadge.textContent = 'muted';
  const meter = document.createElement('span');
  meter.className = 'meter';
  meter.title = 'Audio activity';
  meter.setAttribute('role', 'meter');
  meter.setAttribute('aria-label', `Audio activity of ${label}`);
  meter.setAttribute('aria-valuemin', '0');
  meter.setAttribute('aria-valuemax', '100');
  meter.setAttribute('aria-valuenow', '0');
  const level = document.createElement('span');
  level.className = 'level';
  meter.append(level);
  const state = document.createElement('span');
  state.className = 'state';
  const route = document.createElement('span');
  route.className = 'route';
  caption.append(name, mutedBadge, meter, state, route);
  tile.append(video, placeholder, caption);
  if (isLocal) {
    tile.dataset.local = 'true';
  } else {
    tile.dataset.clientId = clientId;
    tile.dataset.agentId = agentId;
    tile.dataset.peerState = 'new';
    state.textContent = 'new';
  }
  ui.tiles.append(tile);
  return { tile, video, name, meter, level, state, route };
}

function showLevel(view, audioLevel) {
  // Perceived loudness grows roughly with the square root of the linear level.
  const percent = Math.min(100, Math.round(Math.sqrt(Math.max(0, audioLevel)) * 100));
  view.level.style.width = `${percent}%`;
  view.meter.setAttribute('aria-valuenow', String(percent));
  view.tile.classList.toggle('speaking', audioLevel > SPEAKING_LEVEL);
}

function playVideo(view, { withSound }) {
  view.video.play().catch(() => {
    if (!withSound || view.video.muted) return;
    // Autoplay with sound needs a click on this page (autojoin): play muted, offer a button.
    view.video.muted = true;
    view.video.play().catch(() => {});
    if (view.tile.querySelector('.unmute-audio')) return;
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'unmute-audio';
    button.textContent = 'Click to hear';
    button.addEventListener('click', () => {
      view.video.muted = false;
      view.video.play().catch(() => {});
      button.remove();
    });
    view.tile.append(button);
  });
}

// ---------------------------------------------------------------------------- peers

class Peer {
  /**
   * One remote participant: its RTCPeerConnection and its tile.
   *
   * @param {string} clientId the remote socket id
   * @param {string} agentId the remote agentId (the tile's label)
   * @param {boolean} isInitiator true when this page makes the first offer (it is the newcomer)
   */
  constructor(clientId, agentId, isInitiator) {
    this.clientId = clientId;
    this.agentId = agentId;
    this.isInitiator = isInitiator;
    this.isPolite = call.clientId > clientId;
    this.isNegotiated = false;
    this.isMakingOffer = false;
    this.isIgnoringOffer = false;
    this.isClosed = false;
    this.chain = Promise.resolve();
    this.stream = new MediaStream();
    this.stats = { framesDecoded: 0, audioPacketsReceived: 0, audioLevel: 0, localAudioLevel: 0 };
    this.view = makeTile({ label: agentId, clientId, agentId, isLocal: false });

    const pc = new RTCPeerConnection({
      iceServers: call.iceServers,
      iceTransportPolicy: call.relayOnly ? 'relay' : 'all',
    });
    this.pc = pc;
    pc.onicecandidateerror = (event) => noteIceError(event);
    pc.onicecandidate = ({ candidate }) => {
      if (candidate === null) {
        send('candidate-end', { to: this.clientId });
      } else if (candidate.candidate) {
        send('candidate', { to: this.clientId, candidate: candidate.toJSON() });
      }
    };
    pc.ontrack = ({ track }) => {
      this.stream.addTrack(track);
      if (this.view.video.srcObject !== this.stream) {
        this.view.video.srcObject = this.stream;
      }
      playVideo(this.view, { withSound: true });
    };
    pc.onconnectionstatechange = () => this.showState();
    pc.oniceconnectionstatechange = () => {
      // The first offerer restarts ICE; perfect negotiation carries the new offer.
      if (pc.iceConnectionState === 'failed' && this.isInitiator) pc.restartIce();
    };
    pc.onnegotiationneeded = () => this.negotiate();

    const stream = call.localStream;
    const tracks = stream ? stream.getTracks() : [];
    for (const track of tracks) pc.addTrack(track, stream);
    if (isInitiator) {
      // Without a camera or microphone, still ask to receive the others' media.
      for (const kind of ['audio', 'video']) {
        if (!tracks.some((track) => track.kind === kind)) pc.addTransceiver(kind, { direction: 'recvonly' });
      }
    }
    this.showState();
  }

  /** Run `task` after every earlier message of this peer has been handled, in order. */
  enqueue(task) {
    this.chain = this.chain.then(task).catch((err) => {
      if (!this.isClosed) console.warn(`peer ${this.agentId}:`, err);
    });
    return this.chain;
  }

  async negotiate() {
    // Deterministic first offerer: a member waits for the newcomer's offer.
    if (this.isClosed || (!this.isInitiator && !this.isNegotiated)) return;
    try {
      this.isMakingOffer = true;
      await this.pc.setLocalDescription();
      send('offer', { to: this.clientId, sdp: plainDescription(this.pc.localDescription) });
    } catch (err) {
      console.warn(`offer to ${this.agentId} failed:`, err);
    } finally {
      this.isMakingOffer = false;
    }
  }

  async handleDescription(eventType, sdp) {
    if (this.isClosed) return;
    // SPEC section 3: `sdp` is an RTCSessionDescriptionInit or a bare SDP string.
    const description = typeof sdp === 'string' ? { type: eventType, sdp } : { type: sdp.type || eventType, sdp: sdp.sdp };
    const isCollision = description.type === 'offer' && (this.isMakingOffer || this.pc.signalingState !== 'stable');
    this.isIgnoringOffer = !this.isPolite && isCollision;
    if (this.isIgnoringOffer) return;
    await this.pc.setRemoteDescription(description); // the polite side rolls back implicitly
    if (description.type === 'offer') {
      await this.pc.setLocalDescription();
      send('answer', { to: this.clientId, sdp: plainDescription(this.pc.localDescription) });
    }
    this.isNegotiated = true;
  }

  async handleCandidate(candidate) {
    if (this.isClosed) return;
    try {
      // `candidate-end` arrives as candidate null: the remote side gathered everything.
      if (candidate) await this.pc.addIceCandidate(candidate);
      else await this.pc.addIceCandidate();
    } catch (err) {
      if (!this.isIgnoringOffer) console.warn(`candidate from ${this.agentId} refused:`, err);
    }
  }

  showState() {
    const state = this.isClosed ? 'closed' : this.pc.connectionState;
    this.view.tile.dataset.peerState = state;
    this.view.state.textContent = state;
  }

  async collectStats() {
    if (this.isClosed) return this.stats;
    const report = await this.pc.getStats();
    const stats = { framesDecoded: 0, audioPacketsReceived: 0, audioLevel: 0, localAudioLevel: 0 };
    Object.assign(stats, selectedPairTypes(report));
    report.forEach((entry) => {
      if (entry.type === 'inbound-rtp' && entry.kind === 'video') {
        stats.framesDecoded += entry.framesDecoded || 0;
      } else if (entry.type === 'inbound-rtp' && entry.kind === 'audio') {
        stats.audioPacketsReceived += entry.packetsReceived || 0;
        stats.audioLevel = Math.max(stats.audioLevel, entry.audioLevel || 0);
      } else if (entry.type === 'media-source' && entry.kind === 'audio') {
        stats.localAudioLevel = Math.max(stats.localAudioLevel, entry.audioLevel || 0);
      }
    });
    this.stats = stats;
    this.showRoute(stats);
    return stats;
  }

  showRoute({ localCandidateType, remoteCandidateType }) {
    const route = localCandidateType ? `${localCandidateType}/${remoteCandidateType}` : '';
    this.view.tile.dataset.candidateType = route;
    this.view.route.textContent = route ? `via ${localCandidateType} ↔ ${remoteCandidateType}` : '';
  }

  close() {
    if (this.isClosed) return;
    this.isClosed = true;
    this.showState();
    this.pc.close();
    this.view.video.srcObject = null;
    this.view.tile.remove();
  }
}

/** The candidate types of the selected pair in a getStats() report, or nulls before one is chosen. */
function selectedPairTypes(report) {
  let pair = null;
  report.forEach((entry) => {
    if (entry.type === 'transport' && entry.selectedCandidatePairId) pair = report.get(entry.selectedCandidatePairId);
  });
  if (!pair) {
    report.forEach((entry) => {
      if (entry.type === 'candidate-pair' && entry.nominated && entry.state === 'succeeded') pair = entry;
    });
  }
  const local = pair && report.get(pair.localCandidateId);
  const remote = pair && report.get(pair.remoteCandidateId);
  return {
    localCandidateType: (local && local.candidateType) || null,
    remoteCandidateType: (remote && remote.candidateType) || null,
  };
}

function noteIceError({ url, errorCode, errorText }) {
  call.iceErrors.push({ url: url || null, errorCode, errorText: errorText || '' });
  const isTurn = typeof url === 'string' && /^turns?:/.test(url);
  if (isTurn && TURN_AUTH_ERRORS.has(errorCode)) showError('turn_refused', `${url}: ${errorCode} ${errorText || ''}`);
}

function describeIceServers() {
  const urls = call.iceServers.flatMap((server) => (Array.isArray(server.urls) ? server.urls : [server.urls]));
  const turn = urls.filter((url) => /^turns?:/.test(url)).length;
  const stun = urls.filter((url) => /^stuns?:/.test(url)).length;
  const servers = turn + stun ? `${stun} STUN and ${turn} TURN URL${turn + stun === 1 ? '' : 's'} from the server` : 'no STUN/TURN servers (host candidates only)';
  ui.iceInfo.textContent = `ICE: ${servers}${call.relayOnly ? '; relay only' : ''}.`;
  ui.iceInfo.hidden = false;
}

/** Tell a lone participant to share the link; hide the hint once someone else is here. */
function showPresence() {
  ui.alone.hidden = !(call.phase === 'joined' && call.peers.size === 0);
}

function addPeer(clientId, agentId, isInitiator) {
  let peer = call.peers.get(clientId);
  if (!peer && clientId !== call.clientId) {
    peer = new Peer(clientId, agentId, isInitiator);
    call.peers.set(clientId, peer);
    showPresence();
  }
  return peer;
}

function removePeer(clientId) {
  const peer = call.peers.get(clientId);
  if (peer) {
    call.peers.delete(clientId);
    peer.close();
    showPresence();
  }
}

function closeAllPeers() {
  for (const clientId of [...call.peers.keys()]) removePeer(clientId);
}

// ---------------------------------------------------------------------------- local media

async function openLocalMedia() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showError('insecure_context');
    return new MediaStream();
  }
  const attempts = [
    { audio: true, video: { width: { ideal: 640 }, height: { ideal: 480 } } },
    { audio: true, video: false },
    { audio: false, video: true },
  ];
  let lastFailure = null;
  for (const constraints of attempts) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (err) {
      lastFailure = err;
    }
  }
  showError('media_unavailable', lastFailure ? `${lastFailure.name}: ${lastFailure.message}` : undefined);
  return new MediaStream();
}

function watchLocalAudio(stream) {
  // A local level meter from Web Audio; in peer calls getStats() media-source levels win.
  if (!stream.getAudioTracks().length || !window.AudioContext) return;
  try {
    call.audioContext = new AudioContext();
    const source = call.audioContext.createMediaStreamSource(stream);
    call.localAnalyser = call.audioContext.createAnalyser();
    call.localAnalyser.fftSize = 512;
    source.connect(call.localAnalyser);
  } catch (err) {
    console.warn('no local audio meter:', err);
  }
}

function localAnalyserLevel() {
  const analyser = call.localAnalyser;
  if (!analyser || call.audioContext.state !== 'running') return 0;
  const samples = new Float32Array(analyser.fftSize);
  analyser.getFloatTimeDomainData(samples);
  let peak = 0;
  for (const sample of samples) peak = Math.max(peak, Math.abs(sample));
  return peak;
}

function showCallPanel() {
  ui.joinPanel.hidden = true;
  ui.callPanel.hidden = false;
  ui.roomLabel.textContent = call.roomId;
  ui.agentLabel.textContent = call.agentId || '…';
  const link = shareLink(call.roomId, call.relayOnly);
  ui.shareLink.href = link;
  ui.shareLink.textContent = link;
  ui.shareTokenNote.textContent = config.devMode ? ' (Join there mints a token for each person)' : ' (each person needs their own token)';
  ui.iceInfo.hidden = true;
  call.localTile = makeTile({ label: 'You', isLocal: true });
  call.localTile.video.srcObject = call.localStream;
  playVideo(call.localTile, { withSound: false });
  const hasAudio = call.localStream.getAudioTracks().length > 0;
  const hasVideo = call.localStream.getVideoTracks().length > 0;
  ui.muteButton.disabled = !hasAudio;
  ui.cameraButton.disabled = !hasVideo;
  setToggle(ui.muteButton, false, 'Mute', 'Unmute');
  setToggle(ui.cameraButton, false, 'Camera off', 'Camera on');
  call.localTile.tile.classList.toggle('camera-off', !hasVideo);
}

/** The invite link for `roomId`: this page with `?room=` (and `&relay=1` in relay-only mode), never a token. */
function shareLink(roomId, relayOnly) {
  const link = new URL(window.location.pathname, window.location.origin);
  link.searchParams.set('room', roomId);
  if (relayOnly) link.searchParams.set('relay', '1');
  return link.toString();
}

function setToggle(button, isPressed, offLabel, onLabel) {
  button.setAttribute('aria-pressed', String(isPressed));
  button.textContent = isPressed ? onLabel : offLabel;
}

function toggleMute() {
  const tracks = call.localStream ? call.localStream.getAudioTracks() : [];
  if (!tracks.length) return;
  const isMuted = tracks[0].enabled; // enabled now: this click mutes
  for (const track of tracks) track.enabled = !isMuted;
  setToggle(ui.muteButton, isMuted, 'Mute', 'Unmute');
  call.localTile.tile.classList.toggle('muted', isMuted);
}

function toggleCamera() {
  const tracks = call.localStream ? call.localStream.getVideoTracks() : [];
  if (!tracks.length) return;
  const isOff = tracks[0].enabled;
  for (const track of tracks) track.enabled = !isOff;
  setToggle(ui.cameraButton, isOff, 'Camera off', 'Camera on');
  call.localTile.tile.classList.toggle('camera-off', isOff);
}

// ---------------------------------------------------------------------------- stats

async function collectAllStats() {
  const result = {};
  let localLevel = 0;
  for (const peer of [...call.peers.values()]) {
    try {
      const stats = await peer.collectStats();
      localLevel = Math.max(localLevel, stats.localAudioLevel);
      result[peer.clientId] = {
        agentId: peer.agentId,
        state: peer.pc.connectionState,
        framesDecoded: stats.framesDecoded,
        audioPacketsReceived: stats.audioPacketsReceived,
        audioLevel: stats.audioLevel,
        localCandidateType: stats.localCandidateType,
        remoteCandidateType: stats.remoteCandidateType,
      };
      showLevel(peer.view, stats.audioLevel);
    } catch (err) {
      // The peer closed between listing and asking: it is gone from the call anyway.
    }
  }
  if (call.localTile) {
    const isMuted = call.localTile.tile.classList.contains('muted');
    showLevel(call.localTile, isMuted ? 0 : Math.max(localLevel, localAnalyserLevel()));
  }
  return result;
}

function startStats() {
  stopStats();
  call.statsTimer = window.setInterval(() => {
    collectAllStats().catch(() => {});
  }, STATS_INTERVAL_MS);
}

function stopStats() {
  if (call.statsTimer !== null) window.clearInterval(call.statsTimer);
  call.statsTimer = null;
}

// ---------------------------------------------------------------------------- socket events

function onConnected({ clientId, agentId, iceServers }) {
  call.clientId = clientId;
  call.agentId = agentId;
  call.iceServers = Array.isArray(iceServers) ? iceServers : [];
  describeIceServers();
  ui.agentLabel.textContent = agentId;
  if (call.localTile) call.localTile.name.textContent = `You (${agentId})`;
  setStatus(`Connected as ${agentId}; joining ${call.roomId}…`);
  call.early = [];
  const socket = call.socket;
  socket.timeout(ACK_TIMEOUT_MS).emit('join_room', { roomId: call.roomId }, (err, reply) => {
    if (call.socket !== socket) return; // left (or rejoined) meanwhile
    if (err) {
      showError('join_timeout');
      endCall('error');
    } else if (!reply || !reply.ok) {
      const failure = (reply && reply.error) || { code: 'join_failed', message: 'join refused' };
      showError(failure.code, failure.message);
      endCall('error');
    } else {
      onJoined(reply); // normally the `joined` event came first and this does nothing
    }
  });
}

// `joined` (event, or the ack's copy): we are in. The server sends the event before it tells
// anyone else, so every later room event finds us ready.
function onJoined(reply) {
  if (call.phase === 'joined' || reply.roomId !== call.roomId) return;
  setPhase('joined');
  clearErrorUnlessMedia();
  const others = reply.participants.length;
  setStatus(`In room ${reply.roomId} as ${reply.agentId} with ${others} other${others === 1 ? '' : 's'}`);
  // The newcomer offers to every member already there.
  for (const participant of reply.participants) {
    addPeer(participant.clientId, participant.agentId, true);
  }
  showPresence();
  startStats();
  const early = call.early;
  call.early = [];
  for (const replay of early) replay();
}

/** Wrap a room event handler: hold the event while our join is in flight, then replay it. */
function roomEvent(handler) {
  return (message) => {
    if (call.phase === 'connecting' || call.phase === 'reconnecting') {
      call.early.push(() => handler(message));
    } else {
      handler(message);
    }
  };
}

function clearErrorUnlessMedia() {
  const code = window.demoLastError && window.demoLastError.code;
  if (code !== 'media_unavailable' && code !== 'insecure_context') clearError();
}

function onConnectError(err) {
  const code = err && err.message;
  if (code === 'missing_token' || code === 'invalid_token' || code === 'token_expired') {
    showError(code);
    endCall('error');
  } else if (call.socket && !call.socket.active) {
    showError('server_unreachable', code);
    endCall('error');
  } else {
    setStatus('Cannot reach the server; retrying…');
  }
}

function onDisconnect(reason, details) {
  call.disconnects.push({
    reason,
    phase: call.phase,
    description: details && details.description !== undefined ? String(details.description) : null,
    at: new Date().toISOString(),
  });
  if (call.phase === 'leaving') return; // leave_room's ack or timeout ends the call
  // Our room membership ended with the connection: every peer connection is stale.
  closeAllPeers();
  stopStats();
  if (reason === 'io server disconnect') {
    showError('server_disconnected');
    endCall('error');
  } else {
    setPhase('reconnecting');
    setStatus('Connection to the server lost; reconnecting…');
  }
}

function onUserJoined({ clientId, agentId, roomId }) {
  if (call.phase !== 'joined' || roomId !== call.roomId) return;
  // A member does not offer: it waits for the newcomer's offer (see Peer.negotiate).
  addPeer(clientId, agentId, false);
  setStatus(`${agentId} joined`);
}

function onUserLeft({ clientId, agentId, roomId }) {
  if (roomId !== call.roomId) return;
  removePeer(clientId);
  if (call.phase === 'joined') setStatus(`${agentId} left`);
}

function onRoomClosed({ roomId, reason }) {
  if (roomId !== call.roomId) return;
  showError('room_closed', reason, CLOSE_TEXT[reason]);
  endCall('closed');
}

function onDescription(eventType, message) {
  if (call.phase !== 'joined' || message.roomId !== call.roomId) return;
  const peer = eventType === 'offer' ? addPeer(message.from, message.agentId, false) : call.peers.get(message.from);
  if (peer) peer.enqueue(() => peer.handleDescription(eventType, message.sdp));
}

function onCandidate(message) {
  if (call.phase !== 'joined' || message.roomId !== call.roomId) return;
  const peer = call.peers.get(message.from);
  if (peer) peer.enqueue(() => peer.handleCandidate(message.candidate));
}

function onServerError({ code, message, event }) {
  if (RELAY_EVENTS.has(event) && QUIET_RELAY_ERRORS.has(code)) {
    console.debug('relay raced a departure:', code, message);
    return;
  }
  showError(code, message);
}

// ---------------------------------------------------------------------------- join / leave

async function joinCall(roomId, token) {
  if (['starting', 'connecting', 'joined', 'reconnecting', 'leaving'].includes(call.phase)) return;
  clearError();
  if (!token && roomId && config.devMode && ui.mintForm) {
    // Development mode: an invitee who opens the share link joins without minting by hand.
    ui.joinButton.disabled = true;
    try {
      token = await mintToken();
    } catch (err) {
      showError('mint_failed', err.message);
      setPhase('error');
      return;
    } finally {
      ui.joinButton.disabled = false;
    }
  }
  const refusal = typeof window.io !== 'function' ? 'client_missing' : !roomId ? 'missing_room' : !token ? 'missing_token' : null;
  if (refusal) {
    showError(refusal);
    setPhase('error');
    return;
  }
  call.roomId = roomId;
  call.token = token;
  call.clientId = null;
  call.agentId = null;
  call.iceServers = [];
  call.iceErrors = [];
  call.relayOnly = ui.relayInput.checked;
  setPhase('starting');
  ui.joinButton.disabled = true;
  setStatus('Starting camera and microphone…');
  call.localStream = await openLocalMedia();
  watchLocalAudio(call.localStream);
  showCallPanel();
  setPhase('connecting');
  setStatus('Connecting to the server…');
  // Default options: HTTP long-polling, upgraded to WebSocket (SPEC section 3).
  const socket = window.io({ path: config.socketPath, auth: { token } });
  call.socket = socket;
  socket.on('connected', onConnected);
  socket.on('connect_error', onConnectError);
  socket.on('disconnect', onDisconnect);
  socket.on('joined', onJoined);
  socket.on('user_joined', roomEvent(onUserJoined));
  socket.on('user_left', roomEvent(onUserLeft));
  socket.on('room_closed', roomEvent(onRoomClosed));
  socket.on('offer', roomEvent((message) => onDescription('offer', message)));
  socket.on('answer', roomEvent((message) => onDescription('answer', message)));
  socket.on('candidate', roomEvent(onCandidate));
  socket.on('error', onServerError);
}

function leaveCall() {
  if (call.phase !== 'joined' || !call.socket) {
    endCall('left');
    return;
  }
  setPhase('leaving');
  setStatus('Leaving…');
  call.socket.timeout(LEAVE_TIMEOUT_MS).emit('leave_room', { roomId: call.roomId }, () => endCall('left'));
}

const END_STATUS = {
  left: 'You left the call.',
  closed: 'The room was closed.',
  error: 'Not connected',
};

function endCall(phase) {
  stopStats();
  closeAllPeers();
  if (call.socket) {
    const socket = call.socket;
    call.socket = null;
    socket.off();
    socket.disconnect();
  }
  if (call.localStream) {
    for (const track of call.localStream.getTracks()) track.stop();
    call.localStream = null;
  }
  if (call.audioContext) {
    call.audioContext.close().catch(() => {});
    call.audioContext = null;
    call.localAnalyser = null;
  }
  if (call.localTile) {
    call.localTile.tile.remove();
    call.localTile = null;
  }
  ui.callPanel.hidden = true;
  ui.alone.hidden = true;
  ui.joinPanel.hidden = false;
  ui.joinButton.disabled = false;
  setPhase(phase);
  setStatus(END_STATUS[phase] || 'Not connected');
}

// ---------------------------------------------------------------------------- development mode

async function postJson(url, body, headers = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.detail || `HTTP ${response.status}`);
    error.code = data.code;
    throw error;
  }
  return data;
}

async function mintToken() {
  const agentId = ui.agentInput.value.trim();
  const data = await postJson(config.tokenUrl, { agentId });
  ui.tokenInput.value = data.token;
  setStatus(`Token minted for ${data.agentId}`);
  return data.token;
}

function setUpDevPanel() {
  if (!config.devMode || !ui.mintForm) return;
  ui.agentInput.value = params.get('agent') || `agent-${Math.random().toString(16).slice(2, 6)}`;
  ui.mintForm.addEventListener('submit', (event) => {
    event.preventDefault();
    clearError();
    mintToken().catch((err) => showError('mint_failed', err.message));
  });
  ui.roomForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearError();
    try {
      const token = ui.tokenInput.value.trim() || (await mintToken());
      const room = await postJson(
        config.roomsUrl,
        { name: ui.roomNameInput.value.trim(), type: ui.roomTypeInput.value },
        { Authorization: `Bearer ${token}` },
      );
      ui.roomInput.value = room.id;
      const link = shareLink(room.id, ui.relayInput.checked);
      ui.inviteLink.href = link;
      ui.inviteLink.textContent = link;
      ui.invite.hidden = false;
      setStatus(`Room ${room.id} created`);
    } catch (err) {
      showError(err.code && ERROR_TEXT[err.code] ? err.code : 'create_room_failed', err.message);
    }
  });
}

// ---------------------------------------------------------------------------- start

function start() {
  ui.roomInput.value = params.get('room') || '';
  ui.tokenInput.value = params.get('token') || '';
  ui.relayInput.checked = params.get('relay') === '1';
  setUpDevPanel();
  ui.joinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    joinCall(ui.roomInput.value.trim(), ui.tokenInput.value.trim());
  });
  ui.muteButton.addEventListener('click', toggleMute);
  ui.cameraButton.addEventListener('click', toggleCamera);
  ui.leaveButton.addEventListener('click', leaveCall);
  document.addEventListener('click', () => {
    if (call.audioContext && call.audioContext.state === 'suspended') call.audioContext.resume().catch(() => {});
  });
  window.addEventListener('pagehide', () => {
    if (call.socket) call.socket.disconnect();
  });
  window.demoStats = collectAllStats;
  window.demoState = () => ({
    phase: call.phase,
    clientId: call.clientId,
    agentId: call.agentId,
    roomId: call.roomId,
    relayOnly: call.relayOnly,
    iceServers: call.iceServers,
    iceErrors: call.iceErrors,
    disconnects: call.disconnects,
    shareLink: ui.callPanel.hidden ? null : ui.shareLink.href,
    aloneShown: !ui.alone.hidden,
    peers: [...call.peers.values()].map((peer) => ({
      clientId: peer.clientId,
      agentId: peer.agentId,
      state: peer.isClosed ? 'closed' : peer.pc.connectionState,
    })),
  });
  if (params.get('autojoin') === '1') {
    joinCall(ui.roomInput.value.trim(), ui.tokenInput.value.trim());
  }
}

start();
