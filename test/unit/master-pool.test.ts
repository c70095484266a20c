/**
 * The master's worker pool (src/master/pool.ts): supervision rules driven with a fake clock and
 * no processes; the actions it returns are checked instead of their effects.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  BACKOFF_MAX_MS,
  BOOT_KILL_GRACE_MS,
  MAX_BOOT_FAILURES,
  MEMORY_CHECKS,
  WorkerPool,
  backoffDelay,
  type PoolAction,
  type PoolOptions,
  type WorkerExit,
  poolOptionsOf,
} from '../../src/master/pool.js';
import { testSettings } from '../helpers/settings.js';
import { RECENT_MS } from '../../src/dispatch/table.js';

/** The real defaults (option table), two workers, TTIN up to 8. */
const OPTIONS: PoolOptions = { ...poolOptionsOf(testSettings('/srv/site', { workers: 2 })), maxWorkers: 8 };

function pool(options: Partial<PoolOptions> = {}): WorkerPool {
  return new WorkerPool({ ...OPTIONS, ...options });
}

function spawned(actions: readonly PoolAction[]): number[] {
  return actions.flatMap((a) => (a.type === 'spawn' ? [a.worker.id] : []));
}
function ofType<T extends PoolAction['type']>(actions: readonly PoolAction[], type: T): Extract<PoolAction, { type: T }>[] {
  return actions.filter((a): a is Extract<PoolAction, { type: T }> => a.type === type);
}
function drained(actions: readonly PoolAction[]): number[] {
  return ofType(actions, 'undispatch').map((a) => a.id);
}
function killed(actions: readonly PoolAction[]): Array<[number, string]> {
  return ofType(actions, 'kill').map((a) => [a.id, a.signal]);
}
function messages(actions: readonly PoolAction[]): string[] {
  return ofType(actions, 'log').map((a) => a.message);
}

/** Fork and ready every worker manage() asks for; returns their ids. */
function bootAll(p: WorkerPool, now: number): number[] {
  const ids = spawned(p.manage(now));
  for (const id of ids) {
    p.forked(id, 1000 + id);
    p.announced(id, true, now);
  }
  return ids;
}

const exit = (code: number | null, at: number, signal: string | null = null): WorkerExit => ({ code, signal, closedAt: at, lastReport: 0 });

function serving(p: WorkerPool): number[] {
  return [...p.workers.values()].filter((w) => w.state === 'serving').map((w) => w.id);
}

describe('start', () => {
  test('spawns the wanted workers; serving needs both the IPC ready and the dispatch connection', () => {
    const p = pool();
    const ids = spawned(p.manage(0));
    assert.deepEqual(ids, [1, 2]);
    assert.deepEqual(p.announced(1, false, 10), []);
    assert.equal(p.workers.get(1)?.state, 'booting');
    assert.deepEqual(messages(p.connected(1, 20)), ['worker ready']);
    assert.deepEqual(messages(p.connected(2, 20)), []); // not announced yet
    p.announced(2, true, 30);
    const actions = p.manage(40);
    assert.equal(p.phase, 'running');
    assert.deepEqual(actions.map((a) => a.type), ['log', 'allReady']);
    assert.deepEqual(spawned(p.manage(50)), []);
  });
});

describe('rolling reload (HUP)', () => {
  test('new workers are ready before the old ones drain: capacity never drops', () => {
    const p = pool();
    const old = bootAll(p, 0);
    p.manage(0);
    const hup = p.signal('SIGHUP', 100);
    assert.deepEqual(ofType(hup, 'retire').map((a) => [a.id, a.bound]), [[1, Infinity], [2, Infinity]]);
    const fresh = spawned(p.manage(100));
    assert.deepEqual(fresh, [3, 4]);
    // Replacements booting: the old ones keep serving.
    assert.deepEqual(drained(p.manage(200)), []);
    p.announced(3, true, 300);
    // One new worker serves: one old one may go, never leaving fewer than 2 serving.
    const first = p.manage(300);
    assert.deepEqual(drained(first), [1]);
    assert.deepEqual(ofType(first, 'tell').map((a) => [a.id, a.message.type]), [[1, 'drain']]);
    assert.ok(serving(p).length >= 2);
    p.announced(4, true, 400);
    assert.deepEqual(drained(p.manage(400)), [2]);
    assert.deepEqual(serving(p), fresh);
    for (const id of old) p.exited(id, exit(0, 500), 500);
    assert.equal(p.counters.reloads, 1);
    assert.equal(p.counters.restarts, 0);
  });

  test('a failed reload keeps the old workers', () => {
    const p = pool();
    bootAll(p, 0);
    p.manage(0);
    p.signal('SIGHUP', 0);
    // The new code cannot load: each new worker exits 4 before it is ready.
    const now = 0;
    const last: PoolAction[] = [];
    for (const id of spawned(p.manage(now))) last.push(...p.exited(id, exit(4, now), now));
    assert.deepEqual(ofType(last, 'unretire').map((a) => a.id), [1, 2]);
    assert.ok(messages(last).includes('new workers cannot start; keeping the old ones'));
    assert.equal(p.haltCode, undefined);
    assert.deepEqual(serving(p), [1, 2]);
    assert.ok([...p.workers.values()].every((w) => !w.retiring));
    // Nothing more to replace: no drain, no halt.
    assert.deepEqual(drained(p.manage(now)), []);
  });
});

describe('boot failures', () => {
  test('backoff is exponential and capped', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map(backoffDelay), [250, 500, 1000, 2000, 4000, 8000, 15_000, 15_000]);
  });

  test('crashes while booting: one respawn at a time after the backoff, then the crash-loop halt', () => {
    const p = pool();
    let now = 0;
    let ids = spawned(p.manage(now));
    assert.equal(ids.length, 2);
    let actions = p.exited(ids[0]!, exit(1, now), now);
    assert.ok(messages(actions).includes('worker failed to boot'));
    assert.deepEqual(ofType(actions, 'backoff'), [{ type: 'backoff', delayMs: 250 }]);
    // Worker 2 still booting: no second spawn while one boots after a failure.
    assert.deepEqual(spawned(p.manage(now + 1000)), []);
    actions = p.exited(ids[1]!, exit(1, now), now);
    assert.deepEqual(ofType(actions, 'backoff'), [{ type: 'backoff', delayMs: 500 }]);
    assert.deepEqual(spawned(p.manage(now + 499)), [], 'not before the backoff');
    for (let failures = 3; failures <= MAX_BOOT_FAILURES; failures++) {
      ids = spawned(p.manage(now + BACKOFF_MAX_MS));
      assert.equal(ids.length, 1, 'one at a time');
      now += BACKOFF_MAX_MS;
      actions = p.exited(ids[0]!, exit(1, now), now);
    }
    assert.deepEqual(ofType(actions, 'halt'), [{ type: 'halt', code: 3 }]);
    assert.ok(messages(actions).includes('giving up: workers could not boot; the master halts'));
    assert.deepEqual(p.manage(now + BACKOFF_MAX_MS), []);
  });

  test('exit code 4 with nobody serving halts at once with 4', () => {
    const p = pool({ workers: 1 });
    const [id] = spawned(p.manage(0));
    p.fatal(id!, 'boom');
    const actions = p.exited(id!, exit(4, 10), 10);
    assert.deepEqual(ofType(actions, 'halt'), [{ type: 'halt', code: 4 }]);
    assert.deepEqual(ofType(actions, 'log')[0]?.fields?.['reason'], 'boom');
  });

  test('a worker ready resets the failure count', () => {
    const p = pool({ workers: 1 });
    const [a] = spawned(p.manage(0));
    p.exited(a!, exit(1, 0), 0);
    const [b] = spawned(p.manage(1000));
    p.announced(b!, true, 1100);
    assert.equal(p.counters.bootFailures, 0);
  });

  test('boot timeout: SIGTERM once, SIGKILL after the grace, and it counts as a boot failure', () => {
    const p = pool({ workers: 1, bootTimeoutMs: 1000 });
    const [id] = spawned(p.manage(0));
    assert.deepEqual(killed(p.murder(1000)), []);
    const term = p.murder(1001);
    assert.deepEqual(killed(term), [[id, 'SIGTERM']]);
    assert.deepEqual(killed(p.murder(2000)), [], 'not re-sent every tick');
    assert.deepEqual(killed(p.murder(1001 + BOOT_KILL_GRACE_MS)), [[id, 'SIGKILL']]);
    const actions = p.exited(id!, exit(null, 3100, 'SIGKILL'), 3100);
    assert.equal(ofType(actions, 'log')[0]?.fields?.['reason'], 'not ready within the boot timeout (1 s)');
    assert.equal(p.counters.bootFailures, 1);
  });
});

describe('timeouts', () => {
  test('a timed-out request that cannot be cancelled: its worker is replaced gracefully (replacement first, nothing killed)', () => {
    const p = pool({ workers: 1 });
    const [id] = bootAll(p, 0);
    p.manage(0);
    const actions = p.murder(100, [id!]);
    assert.match(messages(actions)[0]!, /timed out and is still running after it was cancelled/);
    assert.deepEqual(ofType(actions, 'retire'), [{ type: 'retire', id: id!, bound: OPTIONS.workerConnections }]);
    assert.deepEqual(killed(actions), [], 'no signal: its other requests go on');
    assert.deepEqual(drained(actions), []);
    assert.equal(p.workers.get(id!)?.state, 'serving');
    assert.deepEqual(p.murder(200, [id!]), [], 'once');
    const [next] = spawned(p.manage(100));
    assert.ok(next !== undefined, 'its replacement is started');
    assert.deepEqual(drained(p.manage(200)), [], 'kept serving until the replacement serves');
    p.forked(next!, 1234);
    p.announced(next!, true, 300);
    assert.deepEqual(drained(p.manage(300)), [id], 'then drained (graceful: it finishes what it runs)');
    assert.deepEqual(killed(p.murder(300 + OPTIONS.gracefulTimeoutMs - 1)), []);
  });

  test('no worker serving after the first boot: waiting requests are to be refused; not during the first boot', () => {
    const p = pool({ workers: 1 });
    const [id] = spawned(p.manage(0));
    assert.equal(p.refusesWaiting, false, 'booting at start: requests wait');
    p.forked(id!, 1001);
    p.announced(id!, true, 0);
    p.manage(0);
    assert.equal(p.refusesWaiting, false, 'one serves');
    p.exited(id!, exit(1, 10), 10);
    assert.equal(p.refusesWaiting, true, 'it died: nobody serves');
    p.manage(20_000);
    assert.equal(p.refusesWaiting, true, 'its replacement boots: still nobody serves');
  });

  test('no heartbeat for max(timeout, 2 s): aborted', () => {
    const p = pool({ workers: 1, timeoutMs: 1000 });
    const [id] = bootAll(p, 0);
    p.heartbeat(id!, 5, 1000);
    assert.deepEqual(p.murder(3000), []);
    assert.deepEqual(killed(p.murder(3001)), [[id, 'SIGTERM']]);
  });

  test('an abrupt death: its recent replies are suspect; a clean exit after a drain is not', () => {
    const p = pool({ workers: 2 });
    const [a, b] = bootAll(p, 0);
    p.heartbeat(a!, 10, 1000);
    const died = p.exited(a!, { code: null, signal: 'SIGKILL', closedAt: 5000, lastReport: 1200 }, 5000);
    assert.deepEqual(ofType(died, 'bury'), [{ type: 'bury', id: a, pid: 1000 + a!, suspectSince: 1200 - RECENT_MS }]);
    assert.deepEqual(messages(died), ['worker died unexpectedly (killed: perhaps out of memory?)']);
    assert.equal(p.counters.restarts, 1);
    assert.equal(p.served, 10);
    p.signal('SIGTERM', 5000);
    p.drainAll(5000);
    const gone = p.exited(b!, exit(0, 6000), 6000);
    assert.equal(ofType(gone, 'bury')[0]?.suspectSince, Infinity);
  });
});

describe('max-requests', () => {
  test('the retiring worker is bounded and drained once its replacement serves', () => {
    const p = pool({ workers: 1, maxRequests: 1000, maxRequestsJitter: 50, random: () => 0.5 });
    const [id] = bootAll(p, 0);
    assert.equal(p.workers.get(id!)?.maxRequests, 1025);
    p.manage(0);
    const actions = p.retireRequested(id!, 1025);
    assert.deepEqual(ofType(actions, 'retire'), [{ type: 'retire', id, bound: 100 }]);
    assert.deepEqual(p.retireRequested(id!, 1026), [], 'once');
    assert.equal(p.counters.recycled, 1);
    const [fresh] = spawned(p.manage(10));
    assert.deepEqual(drained(p.manage(20)), [], 'alone: keeps serving while its replacement boots');
    p.announced(fresh!, true, 30);
    assert.deepEqual(drained(p.manage(30)), [id]);
  });

  test('overshoot bound used up: drained even though the replacement is not ready', () => {
    const p = pool({ workers: 1, maxRequests: 10 });
    const [id] = bootAll(p, 0);
    p.manage(0);
    p.retireRequested(id!, 10);
    spawned(p.manage(10));
    assert.equal(p.overshootReached(id!), true);
    assert.equal(p.overshootReached(id!), false, 'noted once');
    const actions = p.manage(20);
    assert.deepEqual(drained(actions), [id]);
    assert.equal(ofType(actions, 'log')[0]?.fields?.['reason'], 'max requests reached; overshoot bound used up');
  });

  test('overshoot bound used up while replacements fail to boot: the old worker stays', () => {
    const p = pool({ workers: 1, maxRequests: 10 });
    const [id] = bootAll(p, 0);
    p.manage(0);
    p.retireRequested(id!, 10);
    const [fresh] = spawned(p.manage(10));
    p.overshootReached(id!);
    p.exited(fresh!, exit(1, 20), 20);
    assert.deepEqual(drained(p.manage(30)), []);
  });
});

describe('TTIN / TTOU', () => {
  test('one more, one less (at least 1, at most maxWorkers); extra workers drained oldest first, booting first', () => {
    const p = pool({ workers: 2, maxWorkers: 3 });
    bootAll(p, 0);
    p.manage(0);
    assert.deepEqual(messages(p.signal('SIGTTIN', 10)), ['TTIN: one more worker']);
    assert.deepEqual(p.signal('SIGTTIN', 10), [], 'at maxWorkers');
    assert.equal(p.wanted, 3);
    const [third] = spawned(p.manage(10));
    p.signal('SIGTTOU', 20);
    const drain = p.manage(20);
    assert.deepEqual(drained(drain), [third], 'the booting one first');
    assert.deepEqual(killed(drain), [[third, 'SIGTERM']], 'booting: SIGTERM, nothing in flight');
    assert.equal(p.workers.get(third!)?.killAt, 20 + BOOT_KILL_GRACE_MS);
    p.signal('SIGTTOU', 30);
    assert.deepEqual(drained(p.manage(30)), [1], 'then the oldest serving one');
    p.signal('SIGTTOU', 40);
    assert.equal(p.wanted, 1, 'never below 1');
  });
});

describe('stop', () => {
  test('TERM: stop receiving, then drain all; done when all are gone', () => {
    const p = pool();
    const ids = bootAll(p, 0);
    const term = p.signal('SIGTERM', 10);
    assert.deepEqual(ofType(term, 'stopReceiving'), [{ type: 'stopReceiving', graceful: true }]);
    assert.deepEqual(p.signal('SIGTERM', 11), []);
    assert.deepEqual(p.signal('SIGHUP', 11), [], 'no reload while stopping');
    assert.deepEqual(drained(p.drainAll(20)), ids);
    assert.deepEqual(p.manage(30), [], 'no respawn while stopping');
    for (const id of ids) assert.deepEqual(messages(p.exited(id, exit(0, 40), 40)), ['worker exited']);
    assert.equal(p.workers.size, 0);
  });

  test('INT: SIGINT to all, SIGKILL 2 s later', () => {
    const p = pool();
    const ids = bootAll(p, 0);
    const int = p.signal('SIGINT', 10);
    assert.deepEqual(killed(int), ids.map((id) => [id, 'SIGINT']));
    assert.deepEqual(messages(p.signal('SIGQUIT', 11)), ['fast stop (second signal)']);
    assert.deepEqual(killed(p.murder(2011)), ids.map((id) => [id, 'SIGKILL']));
  });

  test('a worker pausing on its own is drained without being told', () => {
    const p = pool();
    const [id] = bootAll(p, 0);
    const actions = p.paused(id!, 10);
    assert.deepEqual(actions.map((a) => a.type), ['log', 'undispatch']);
    assert.deepEqual(p.paused(id!, 11), []);
    assert.deepEqual(messages(p.exited(id!, exit(0, 20), 20)), ['worker exited']);
  });
});

describe('unexpected deaths', () => {
  test('a serving worker that dies after the crash window is respawned at once (keep-alive)', () => {
    const p = pool();
    const [a] = bootAll(p, 0);
    p.manage(0);
    const t = OPTIONS.crashWindowMs;
    const actions = p.exited(a!, exit(1, t), t);
    assert.deepEqual(messages(actions), ['worker died unexpectedly']);
    assert.deepEqual(ofType(actions, 'backoff'), []);
    assert.equal(p.counters.restarts, 1);
    assert.equal(p.counters.bootFailures, 0, 'not a boot failure');
    assert.equal(p.crashLoop, undefined);
    assert.deepEqual(spawned(p.manage(t)), [3]);
  });

  test('without keep-alive, a dead worker is not replaced (down to 1)', () => {
    const p = pool({ respawn: false, crashWindowMs: 0 });
    const [a, b] = bootAll(p, 0);
    p.manage(0);
    p.exited(a!, exit(1, 100), 100);
    assert.equal(p.wanted, 1);
    assert.deepEqual(spawned(p.manage(100)), []);
    p.exited(b!, exit(1, 200), 200);
    assert.equal(p.wanted, 1);
    assert.deepEqual(spawned(p.manage(200)), [3]);
  });

  test('silent for 30 s when there is no request timeout', () => {
    const p = pool({ workers: 1, timeoutMs: 0 });
    const [id] = bootAll(p, 0);
    assert.deepEqual(p.murder(30_000), []);
    assert.deepEqual(killed(p.murder(30_001)), [[id, 'SIGTERM']]);
  });

  test('HUP while a worker boots: it is replaced before it is ready (SIGTERM, short grace)', () => {
    const p = pool({ workers: 1 });
    const [id] = spawned(p.manage(0));
    p.signal('SIGHUP', 10);
    const actions = p.manage(10);
    assert.deepEqual(spawned(actions), [2]);
    assert.deepEqual(killed(actions), [[id, 'SIGTERM']]);
    assert.equal(ofType(actions, 'log')[0]?.fields?.['reason'], 'replaced before it was ready');
    assert.deepEqual(messages(p.exited(id!, exit(null, 20, 'SIGTERM'), 20)), ['worker exited'], 'asked to stop: not a failure');
    assert.equal(p.counters.bootFailures, 0);
  });
});

describe('crash loops (workers dying soon after becoming ready)', () => {
  const opts = { workers: 1, crashWindowMs: 10_000, crashLoopAfter: 3, crashBackoffMaxMs: 5000 };

  test('quick deaths back off exponentially (capped), become a crash loop after N, one spawn at a time', () => {
    const p = pool({ ...opts, workers: 2 });
    bootAll(p, 0);
    p.manage(0);
    let now = 100;
    const delays: number[] = [];
    const logs: string[] = [];
    let victim = 1;
    for (let death = 1; death <= 5; death++) {
      const actions = p.exited(victim, exit(1, now), now);
      delays.push(...ofType(actions, 'backoff').map((a) => a.delayMs));
      logs.push(...messages(actions));
      assert.equal(p.crashLoop?.deaths, death);
      assert.equal(p.crashLoop?.looping, death >= 3);
      const delay = delays.at(-1)!;
      assert.deepEqual(spawned(p.manage(now + delay - 1)), [], 'not before the backoff');
      const ids = spawned(p.manage(now + delay));
      assert.equal(ids.length, 1, 'one replacement');
      now += delay;
      p.forked(ids[0]!, 1000 + ids[0]!);
      p.announced(ids[0]!, true, now);
      victim = ids[0]!;
      now += 100; // dies 100 ms after becoming ready
    }
    assert.deepEqual(delays, [1000, 2000, 4000, 5000, 5000]);
    assert.equal(logs.filter((m) => m.startsWith('workers are crash-looping')).length, 1, 'logged once, when it starts');
    assert.equal(p.counters.restarts, 5);
    assert.equal(p.counters.bootFailures, 0);
  });

  test('while looping, with several missing, spawns one at a time', () => {
    const p = pool({ ...opts, workers: 3, crashLoopAfter: 1 });
    bootAll(p, 0);
    p.manage(0);
    p.exited(1, exit(1, 10), 10);
    p.exited(2, exit(1, 20), 20);
    assert.equal(p.crashLoop?.looping, true);
    const ids = spawned(p.manage(10_000));
    assert.equal(ids.length, 1);
    assert.deepEqual(spawned(p.manage(10_001)), [], 'not while it boots');
  });

  test('a replacement serving for the crash window ends it; a later death is not quick', () => {
    const p = pool(opts);
    const [a] = bootAll(p, 0);
    p.manage(0);
    for (let i = 0, victim = a!, now = 100; i < 3; i++) {
      p.exited(victim, exit(1, now), now);
      const [id] = spawned(p.manage(now + 10_000));
      now += 10_000;
      p.announced(id!, true, now);
      victim = id!;
      if (i < 2) now += 100;
    }
    assert.equal(p.crashLoop?.looping, true);
    const readyAt = [...p.workers.values()][0]!.readyAt;
    assert.deepEqual(messages(p.manage(readyAt + 9_999)).filter((m) => m.startsWith('crash loop over')), []);
    assert.deepEqual(messages(p.manage(readyAt + 10_000)).filter((m) => m.startsWith('crash loop over')), ['crash loop over: a new worker has been serving stably']);
    assert.equal(p.crashLoop, undefined);
    const late = readyAt + 20_000;
    const actions = p.exited([...p.workers.keys()][0]!, exit(1, late), late);
    assert.deepEqual(ofType(actions, 'backoff'), []);
    assert.equal(p.crashLoop, undefined);
  });

  test('HUP clears the loop and spawns at once; a boot failure is not a quick death', () => {
    const p = pool({ ...opts, crashLoopAfter: 1 });
    const [a] = bootAll(p, 0);
    p.manage(0);
    p.exited(a!, exit(1, 10), 10);
    assert.equal(p.crashLoop?.looping, true);
    p.signal('SIGHUP', 20);
    assert.equal(p.crashLoop, undefined);
    const [b] = spawned(p.manage(20));
    assert.ok(b !== undefined, 'HUP spawns at once, backoff or not');
    p.exited(b!, exit(1, 30), 30);
    assert.equal(p.crashLoop, undefined, 'a boot failure is counted as one, not as a quick death');
  });
});

describe('reload outcome', () => {
  test('pending until every new worker serves, then done; generations count HUPs', () => {
    const p = pool();
    bootAll(p, 0);
    p.manage(0);
    assert.equal(p.reload === undefined, true, "no reload yet");
    p.signal('SIGHUP', 100);
    assert.deepEqual({ ...p.reload, requestedAt: 0 }, { generation: 1, requestedAt: 0, outcome: 'pending', wanted: 2, ready: 0, changed: [], needsRestart: [] });
    const [c, d] = spawned(p.manage(100));
    p.announced(c!, true, 200);
    p.manage(200);
    assert.equal(p.reload?.outcome, 'pending');
    assert.equal(p.reload?.ready, 1);
    p.announced(d!, true, 300);
    const actions = p.manage(300);
    assert.ok(messages(actions).includes('reload complete: the new workers serve'));
    assert.equal(p.reload?.outcome, 'done');
    assert.equal(p.reload?.finishedAt, 300);
    p.signal('SIGHUP', 400);
    assert.equal(p.reload?.generation, 2);
    assert.equal(p.reload?.outcome, 'pending');
  });

  test('new workers that cannot load the app: failed with their error and exit code 4; old ones kept', () => {
    const p = pool();
    bootAll(p, 0);
    p.manage(0);
    p.signal('SIGHUP', 0);
    const ids = spawned(p.manage(0));
    p.fatal(ids[0]!, 'app load error: SyntaxError: Unexpected token');
    p.exited(ids[0]!, exit(4, 10), 10);
    assert.equal(p.reload?.outcome, 'failed');
    assert.equal(p.reload?.reason, 'app load error: SyntaxError: Unexpected token');
    assert.equal(p.reload?.exitCode, 4);
    assert.deepEqual(serving(p), [1, 2]);
  });

  test('new workers crashing while booting: pending through the retries, failed at the last one', () => {
    const p = pool({ workers: 1 });
    bootAll(p, 0);
    p.manage(0);
    p.signal('SIGHUP', 0);
    let now = 0;
    for (let i = 1; i <= MAX_BOOT_FAILURES; i++) {
      const [id] = spawned(p.manage(now));
      assert.ok(id !== undefined);
      assert.equal(p.reload?.outcome, 'pending');
      p.exited(id!, exit(1, now), now);
      now += BACKOFF_MAX_MS;
    }
    assert.equal(p.reload?.outcome, 'failed');
    assert.equal(p.reload?.exitCode, 3);
    assert.match(p.reload?.reason ?? '', /exited with code 1 before it was ready/);
    assert.deepEqual(serving(p), [1]);
  });

  test('new options: the worker count and max-requests of the new workers change', () => {
    const p = pool();
    bootAll(p, 0);
    p.manage(0);
    const options = { ...OPTIONS, workers: 3, maxRequests: 50 };
    p.reloadWith(100, { options, changed: ['--workers', '--max-requests'], needsRestart: ['--recv'] });
    assert.equal(p.wanted, 3);
    const ids = spawned(p.manage(100));
    assert.deepEqual(ids, [3, 4, 5]);
    assert.ok(ids.every((id) => p.workers.get(id)?.maxRequests === 50));
    for (const id of ids) p.announced(id, true, 200);
    const drains = drained(p.manage(200));
    assert.deepEqual(drains, [1, 2]);
    assert.equal(p.reload?.outcome, 'done');
    assert.deepEqual(p.reload?.needsRestart, ['--recv']);
    assert.deepEqual(p.reload?.changed, ['--workers', '--max-requests']);
  });

  test('a refused reload (invalid configuration): failed at once, nothing replaced', () => {
    const p = pool();
    bootAll(p, 0);
    p.manage(0);
    const actions = p.reloadRefused(100, 'wsgid.json: "workers": expected an integer', 2);
    assert.deepEqual(ofType(actions, 'retire'), []);
    assert.deepEqual({ outcome: p.reload?.outcome, generation: p.reload?.generation, exitCode: p.reload?.exitCode }, { outcome: 'failed', generation: 1, exitCode: 2 });
    assert.deepEqual(spawned(p.manage(100)), []);
    assert.equal(p.counters.reloads, 1);
  });
});

describe('--max-memory', () => {
  const MB = 2 ** 20;
  test('recycled after MEMORY_CHECKS samples over the limit in a row, like max-requests', () => {
    const p = pool({ workers: 1, maxMemoryBytes: 100 * MB });
    const [a] = bootAll(p, 0);
    p.manage(0);
    let t = 0;
    const beat = (rss: number) => {
      p.heartbeat(a!, 1, (t += 1000));
      return p.memory(a!, rss);
    };
    for (let i = 1; i < MEMORY_CHECKS; i++) assert.deepEqual(beat(150 * MB), []);
    assert.deepEqual(beat(90 * MB), [], 'one sample under the limit starts the count again');
    for (let i = 1; i < MEMORY_CHECKS; i++) assert.deepEqual(beat(150 * MB), []);
    const actions = beat(150 * MB);
    assert.deepEqual(ofType(actions, 'retire'), [{ type: 'retire', id: a, bound: OPTIONS.workerConnections }]);
    assert.deepEqual(messages(actions), ['worker over --max-memory; replacing it']);
    assert.deepEqual(beat(150 * MB), [], 'asked once');
    assert.equal(p.counters.memoryRecycled, 1);
    // The replacement serves first, then the old one drains (finishing its requests).
    const [b] = spawned(p.manage(t));
    assert.deepEqual(drained(p.manage(t)), []);
    p.announced(b!, true, t);
    assert.deepEqual(drained(p.manage(t)), [a]);
  });

  test('no limit: rss is only recorded', () => {
    const p = pool({ workers: 1, maxMemoryBytes: 0 });
    const [a] = bootAll(p, 0);
    for (let i = 0; i < 10; i++) assert.deepEqual(p.memory(a!, 10_000 * MB), []);
    assert.equal(p.workers.get(a!)?.rss, 10_000 * MB);
  });
});
