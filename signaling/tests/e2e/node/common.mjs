// Shared helpers of the e2e node clients: tokens minted exactly as agent-link does, one JSON
// object per stdout line, bounded waits. Run from the repository root (node_modules there).
import jwt from 'jsonwebtoken';

export const WAIT_MS = 5000;

// SPEC section 1: the agent-link token, as the seed mints it.
export function mint(agentId) {
  return jwt.sign({ agentId }, process.env.JWT_SECRET, { expiresIn: '1h' });
}

export function print(step, data) {
  process.stdout.write(JSON.stringify({ step, data: data === undefined ? null : data }) + '\n');
}

// The next `event` on `emitter` (a socket or an engine), or a rejection after WAIT_MS.
export function next(emitter, event, ms = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args.length <= 1 ? args[0] : args);
    });
  });
}

// emit with an ack, bounded.
export function call(socket, event, payload, ms = WAIT_MS) {
  return socket.timeout(ms).emitWithAck(event, payload);
}

// Transport options by mode: the client default (polling, then upgrade), websocket only,
// polling only.
export function transportOptions(mode) {
  if (mode === 'websocket') return { transports: ['websocket'] };
  if (mode === 'polling') return { transports: ['polling'], upgrade: false };
  return {};
}

// Fail the process (exit 2) after `ms`, printing why: no script may hang the suite.
export function deadline(ms = 15000) {
  const timer = setTimeout(() => {
    print('error', `script deadline of ${ms} ms passed`);
    process.exit(2);
  }, ms);
  timer.unref();
}

export async function main(body) {
  deadline();
  try {
    await body();
    process.exit(0);
  } catch (err) {
    print('error', String(err && err.stack ? err.stack : err));
    process.exit(1);
  }
}
