// Drives the /demo/ page in Debian's headless Chromium through playwright-core and prints
// what it observes as JSON lines, one per step: {"step": NAME, ...}. The Python test
// (signaling/tests/e2e/test_demo_browser.py) decides pass or fail from these lines; this
// script only waits, bounded, for the state a step expects, then reports what it saw.
//
// Usage: node demo_call.mjs '<json spec>'. The spec names the scenario ("mesh", "errors",
// "devmode", "relay" or "relay_refused"), the browser (executablePath, args, userDataDir), the page URLs and a
// screenshot path. Every page reads the page's automation hooks only: data-client-id /
// data-agent-id / data-peer-state on remote tiles, window.demoStats(), window.demoState(),
// window.demoLastError and the #error element.

import { chromium } from 'playwright-core';

const spec = JSON.parse(process.argv[2]);
const POLL_MS = 250;
const stepTimeoutMs = spec.stepTimeoutMs || 30000;

function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const pageErrors = {};

async function openPage(context, name, url) {
  const page = await context.newPage();
  pageErrors[name] = [];
  page.on('pageerror', (err) => pageErrors[name].push(String(err && err.stack ? err.stack : err)));
  page.on('console', (message) => {
    // Closing a socket.io session races its own long-poll GET, which the server may then
    // answer 400 "Session ID unknown" (as Engine.IO does): the browser logs that, the page
    // did nothing wrong.
    const isPollRace = message.text().startsWith('Failed to load resource') && message.location().url.includes('/socket.io/');
    if (message.type() === 'error' && !isPollRace) pageErrors[name].push(`console: ${message.text()}`);
  });
  await page.goto(url, { waitUntil: 'load' });
  return page;
}

// Everything the page shows a test, read through the hooks alone.
async function observe(page) {
  return page.evaluate(async () => {
    const tiles = [...document.querySelectorAll('[data-peer-state]')].map((el) => ({
      clientId: el.dataset.clientId,
      agentId: el.dataset.agentId,
      state: el.dataset.peerState,
    }));
    const routes = Object.fromEntries(
      [...document.querySelectorAll('[data-peer-state]')].map((el) => [el.dataset.clientId, el.dataset.candidateType || '']),
    );
    const errorElement = document.getElementById('error');
    const state = typeof window.demoState === 'function' ? window.demoState() : null;
    const stats = typeof window.demoStats === 'function' ? await window.demoStats() : {};
    return {
      phase: state && state.phase,
      clientId: state && state.clientId,
      agentId: state && state.agentId,
      tiles,
      stats,
      lastError: window.demoLastError,
      errorShown: errorElement && !errorElement.hidden ? errorElement.innerText : null,
      errorCode: errorElement ? errorElement.dataset.errorCode : null,
      devPanelShown: Boolean(document.getElementById('dev-panel')),
      routes,
      relayOnly: state && state.relayOnly,
      iceServers: state && state.iceServers,
      iceErrors: state && state.iceErrors,
      disconnects: state && state.disconnects,
      shareLink: state && state.shareLink,
      aloneShown: state && state.aloneShown,
      aloneText: document.getElementById('alone') ? document.getElementById('alone').innerText : null,
    };
  });
}

// Poll every page until `done(observations)` holds or the step times out; report either way.
async function waitForStep(step, pages, done, extra = {}) {
  const deadline = Date.now() + stepTimeoutMs;
  let observations = {};
  let satisfied = false;
  while (true) {
    observations = {};
    for (const [name, page] of Object.entries(pages)) observations[name] = await observe(page);
    satisfied = done(observations);
    if (satisfied || Date.now() > deadline) break;
    await sleep(POLL_MS);
  }
  emit({ step, satisfied, pages: observations, ...extra });
  return observations;
}

function hasLiveMedia(observation, expectedPeers) {
  const peers = Object.values(observation.stats || {});
  return (
    observation.phase === 'joined' &&
    observation.tiles.length === expectedPeers &&
    observation.tiles.every((tile) => tile.state === 'connected') &&
    peers.length === expectedPeers &&
    peers.every((peer) => peer.state === 'connected' && peer.framesDecoded > 0 && peer.audioPacketsReceived > 0)
  );
}

const allHaveLiveMedia = (expectedPeers) => (observations) =>
  Object.values(observations).every((observation) => hasLiveMedia(observation, expectedPeers));

const showsError = (observations) => Object.values(observations).every((o) => o.lastError && o.errorShown);

async function meshScenario(context) {
  const { urls } = spec;
  // Both at once: whichever the server admits second is the newcomer and makes the offer.
  const [alice, bob] = await Promise.all([openPage(context, 'alice', urls.alice), openPage(context, 'bob', urls.bob)]);
  await waitForStep('pair', { alice, bob }, allHaveLiveMedia(1));

  const carol = await openPage(context, 'carol', urls.carol);
  await waitForStep('mesh', { alice, bob, carol }, allHaveLiveMedia(2));
  await alice.bringToFront();
  await alice.screenshot({ path: spec.screenshotPath });

  const dave = await openPage(context, 'dave', urls.dave);
  await waitForStep('full', { dave }, showsError);
  await dave.close();

  await carol.getByRole('button', { name: 'Leave' }).click();
  const carolId = (await observe(carol)).clientId;
  await waitForStep(
    'leave',
    { alice, bob, carol },
    (o) =>
      o.carol.phase === 'left' &&
      [o.alice, o.bob].every((p) => p.tiles.length === 1 && !p.tiles.some((t) => t.clientId === carolId)),
    { leaverClientId: carolId },
  );

  const response = await fetch(spec.closeRoom.url, {
    method: 'DELETE',
    headers: { Authorization: `Bearer ${spec.closeRoom.token}` },
  });
  await waitForStep(
    'closed',
    { alice, bob },
    (o) => [o.alice, o.bob].every((p) => p.phase === 'closed' && p.tiles.length === 0 && p.lastError),
    { deleteStatus: response.status },
  );
}

// Pages that must each end up showing an error: one step, "errors", for all of them.
async function errorsScenario(context) {
  const pages = {};
  for (const [name, url] of Object.entries(spec.urls)) pages[name] = await openPage(context, name, url);
  await waitForStep('errors', pages, showsError);
}

async function devModeScenario(context) {
  const page = await openPage(context, 'dev', spec.urls.dev);
  await page.getByLabel('Mint a token for agentId').fill(spec.agentId);
  await page.getByRole('button', { name: 'Mint token' }).click();
  await page.waitForFunction(() => document.getElementById('token-input').value.length > 0, null, {
    timeout: stepTimeoutMs,
    polling: POLL_MS,
  });
  await page.getByRole('button', { name: 'Create room' }).click();
  await page.waitForFunction(() => document.getElementById('room-input').value.length > 0, null, {
    timeout: stepTimeoutMs,
    polling: POLL_MS,
  });
  const roomId = await page.inputValue('#room-input');
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  const joined = await waitForStep('dev_join', { dev: page }, (o) => o.dev.phase === 'joined' && o.dev.aloneShown, {
    roomId,
  });
  // What the REST API says about the room while the page is still in it.
  const response = await fetch(new URL(`/api/rooms/${roomId}`, spec.urls.dev));
  emit({ step: 'dev_room', status: response.status, room: await response.json() });

  // Issue 17: the invitee opens the share link shown in the call and presses Join at once.
  const invitee = await openPage(context, 'invitee', joined.dev.shareLink);
  const tokenFieldBeforeJoin = await invitee.inputValue('#token-input');
  const roomFieldBeforeJoin = await invitee.inputValue('#room-input');
  await invitee.getByRole('button', { name: 'Join', exact: true }).click();
  await waitForStep('dev_invitee', { dev: page, invitee }, allHaveLiveMedia(1), {
    roomFieldBeforeJoin,
    tokenFieldBeforeJoin,
  });
}

// Two pages forced to relay-only ICE: they connect through the TURN server, or (with a server
// whose TURN_SECRET the TURN server does not share) report the TURN server's refusal.
async function relayScenario(context) {
  const { urls } = spec;
  const [alice, bob] = await Promise.all([openPage(context, 'alice', urls.alice), openPage(context, 'bob', urls.bob)]);
  const routed = (o) => Object.values(o.routes).length === 1 && Object.values(o.routes).every((route) => route !== '');
  await waitForStep('relay', { alice, bob }, (o) => allHaveLiveMedia(1)(o) && routed(o.alice) && routed(o.bob));
}

async function relayRefusedScenario(context) {
  const { urls } = spec;
  const [alice, bob] = await Promise.all([openPage(context, 'alice', urls.alice), openPage(context, 'bob', urls.bob)]);
  await waitForStep('relay_refused', { alice, bob }, (o) =>
    Object.values(o).every((p) => p.phase === 'joined' && p.tiles.length === 1 && p.errorCode === 'turn_refused'),
  );
}

const scenarios = {
  mesh: meshScenario,
  errors: errorsScenario,
  devmode: devModeScenario,
  relay: relayScenario,
  relay_refused: relayRefusedScenario,
};

async function main() {
  const context = await chromium.launchPersistentContext(spec.userDataDir, {
    executablePath: spec.executablePath,
    headless: true,
    args: spec.args,
    viewport: { width: 1280, height: 800 },
  });
  try {
    await scenarios[spec.scenario](context);
  } finally {
    emit({ step: 'page_errors', errors: pageErrors });
    await context.close();
  }
}

main().catch((err) => {
  emit({ step: 'driver_error', error: String(err && err.stack ? err.stack : err) });
  process.exitCode = 1;
});
