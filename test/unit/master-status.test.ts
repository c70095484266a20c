/**
 * The status file's builder (src/master/status.ts): supervision numbers from the pool, routing
 * numbers from the dispatch table, no process involved.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DispatchTable, type DispatchSink } from '../../src/dispatch/table.js';
import { poolOptionsOf, WorkerPool, type PoolAction } from '../../src/master/pool.js';
import { buildStatus } from '../../src/master/status.js';
import { testSettings } from '../helpers/settings.js';
import { VERSION } from '../../src/version.js';

const sink: DispatchSink = { forward() {}, end() {}, answer() {}, malformed() {}, overflow() {}, retireLimit() {} };

test('status: workers from the pool, their credit and in-flight from the table', () => {
  const pool = new WorkerPool(poolOptionsOf(testSettings('/srv/site', { workers: 2 })));
  const table = new DispatchTable(sink, { maxQueued: 100 });
  const ids = pool.manage(0).flatMap((a: PoolAction) => (a.type === 'spawn' ? [a.worker.id] : []));
  for (const id of ids) {
    table.addWorker(id);
    pool.forked(id, 500 + id);
  }
  table.report(1, Buffer.from([0x43, 0, 0, 0, 0, 7]), 10); // 'C' 7 credits
  pool.announced(1, true, 10);
  pool.heartbeat(1, 42, 1000);
  pool.signal('SIGHUP', 1500);
  const s = buildStatus({ pool, table, masterPid: 99, startedAt: 0, now: 2000 });
  assert.equal(s.version, 1);
  assert.equal(s.wsgid, VERSION);
  assert.deepEqual(s.master, { pid: 99, startedAt: new Date(0).toISOString(), uptime: 2, state: 'starting' });
  assert.equal(s.workersWanted, 2);
  assert.deepEqual(
    s.workers.map((w) => [w.id, w.pid, w.state, w.retiring, w.served, w.credit, w.inFlight, w.uptime]),
    [
      [1, 501, 'serving', true, 42, 7, 0, 2],
      [2, 502, 'booting', true, 0, 0, 0, 2],
    ],
  );
  assert.equal(s.requests.served, 42);
  assert.equal(s.reloads, 1);
});
