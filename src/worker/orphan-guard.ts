/**
 * A worker must not outlive its master. Imported first by worker/main.ts, so this runs before the
 * rest of wsgid and long before the app is imported.
 *
 * What covers what (Linux has a parent-death signal, but Node offers no prctl):
 * - master gone before we started: our parent pid is no longer the master's → exit at once;
 * - master gone while our event loop turns (booting asynchronously, or serving): the IPC channel
 *   closes → 'disconnect' (registered here, so one that comes during the imports is not missed),
 *   plus a parent-pid check on every heartbeat (worker/main.ts);
 * - master gone while our event loop is blocked at boot (a long synchronous import, an app that
 *   never returns from its top level): a watchdog thread with its own event loop polls the parent
 *   pid and SIGKILLs this process (a blocked loop could not run a SIGTERM handler). It lives only
 *   until the worker is ready: it costs ~10 MB of memory.
 * Not covered: a *serving* worker whose event loop is blocked when the master dies exits only once
 * the loop turns again (the master, while alive, kills such a worker for its missing heartbeats).
 */
import { Worker } from 'node:worker_threads';
import { WORKER_ENV } from '../lifecycle/contract.js';

/** How often the boot watchdog looks at the parent pid (ms). */
const WATCH_MS = 250;

/** The watchdog thread's code (CommonJS, evaluated). A changed parent pid means the master is gone. */
const WATCHDOG = `
const { workerData } = require('node:worker_threads');
setInterval(() => {
  if (process.ppid !== workerData.masterPid) process.kill(process.pid, 'SIGKILL');
}, workerData.periodMs);
`;

let masterPid = 0;
let watchdog: Worker | undefined;

const earlyDisconnect = (): void => process.exit(0);

/** The master's pid from the boot config (0 when this is not a forked worker). */
export function expectedMasterPid(): number {
  return masterPid;
}

/** Is the master gone? (Our parent changed: we were reparented to init or a subreaper.) */
export function masterGone(): boolean {
  return masterPid > 0 && process.ppid !== masterPid;
}

/**
 * The worker's own 'disconnect' handler is in place (it logs): drop the early one. Exits at once
 * when the master went away during the imports.
 */
export function takeOverDisconnect(): void {
  process.off('disconnect', earlyDisconnect);
  if (masterPid > 0 && (!process.connected || masterGone())) process.exit(0);
}

/** The worker is ready: its event loop turns, 'disconnect' and the heartbeat check cover the rest. */
export function stopBootWatchdog(): void {
  void watchdog?.terminate();
  watchdog = undefined;
}

function arm(): void {
  const raw = process.env[WORKER_ENV];
  if (raw === undefined || typeof process.send !== 'function') return;
  try {
    const pid = (JSON.parse(raw) as { masterPid?: unknown }).masterPid;
    masterPid = typeof pid === 'number' && pid > 0 ? pid : process.ppid;
  } catch {
    return; // main.ts reports the bad config
  }
  if (masterGone() || !process.connected) process.exit(0);
  process.on('disconnect', earlyDisconnect);
  try {
    watchdog = new Worker(WATCHDOG, { eval: true, workerData: { masterPid, periodMs: WATCH_MS } });
    watchdog.unref();
    watchdog.on('error', () => (watchdog = undefined));
  } catch {
    watchdog = undefined; // no threads: 'disconnect' and the heartbeat check still cover a turning loop
  }
}

arm();
