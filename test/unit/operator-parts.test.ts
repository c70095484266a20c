/**
 * The pure parts behind the operator's truths: the pool's last unexpected death
 * (why `status` says a crash loop or boot failures happen), the app output budget, the file
 * descriptor estimate, and which wsgid.json values the command line overrides.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WorkerPool, poolOptionsOf, type PoolAction } from '../../src/master/pool.js';
import { OutputBudget } from '../../src/log/app-output.js';
import { fdLimitWarning, fdNeeds } from '../../src/fs/fd-limit.js';
import { overriddenFileValues } from '../../src/config/resolve.js';
import { testSettings } from '../helpers/settings.js';

function spawnedIds(actions: readonly PoolAction[]): number[] {
  return actions.flatMap((a) => (a.type === 'spawn' ? [a.worker.id] : []));
}

test('lastDeath: a boot failure keeps the first line of the reported reason; a requested stop is no death', () => {
  const p = new WorkerPool({ ...poolOptionsOf(testSettings('/srv/site', { workers: 1 })), maxWorkers: 8 });
  const [first] = spawnedIds(p.manage(0));
  p.forked(first!, 1001);
  p.fatal(first!, 'app load error: SyntaxError: Unexpected token\n  at app/server.mjs:3', { detail: 'frame' });
  p.exited(first!, { code: 4, signal: null, closedAt: 10, lastReport: 0 }, 10);
  assert.deepEqual(p.lastDeath, { worker: first, pid: 1001, at: 10, exit: 'code 4', booting: true, reason: 'app load error: SyntaxError: Unexpected token' });
  assert.equal(p.reload, undefined);
});

test('OutputBudget: never more than burst + rate × elapsed passes; the rest is counted (seeded)', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 0, max: 300 })), { maxLength: 400 }), (lines) => {
      const rate = 10_000;
      const burst = 40_000;
      const b = new OutputBudget(rate, burst, 0);
      let now = 0;
      let passed = 0;
      let dropped = 0;
      let droppedBytes = 0;
      for (const [bytes, gap] of lines) {
        now += gap;
        if (b.take(bytes, now)) passed += bytes;
        else {
          dropped++;
          droppedBytes += bytes;
        }
      }
      assert.ok(passed <= burst + (rate * now) / 1000, `${passed} > ${burst} + ${rate} × ${now} ms`);
      const report = b.takeDropped(now, true);
      assert.deepEqual(report, dropped === 0 ? undefined : { lines: dropped, bytes: droppedBytes });
    }),
    { seed: 18_19, numRuns: 200 },
  );
});

test('OutputBudget: a drop report at most once a second, unless final', () => {
  const b = new OutputBudget(100, 100, 0);
  assert.equal(b.take(200, 0), false);
  assert.deepEqual(b.takeDropped(0), { lines: 1, bytes: 200 });
  assert.equal(b.take(200, 10), false);
  assert.equal(b.takeDropped(500), undefined);
  assert.deepEqual(b.takeDropped(600, true), { lines: 1, bytes: 200 });
});

test('fdLimitWarning: names the limit and what --workers/--worker-connections need; quiet when enough', () => {
  const needs = fdNeeds(4, 500);
  assert.equal(fdLimitWarning(Math.max(needs.master, needs.worker), 4, 500), undefined);
  assert.equal(fdLimitWarning(undefined, 4, 500), undefined);
  assert.match(fdLimitWarning(256, 4, 500) ?? '', /^the open-file limit is 256, below the 564 that --workers=4 and --worker-connections=500 need/);
});

test('overriddenFileValues: a file value the command line changes is named with both values; equal or map values are not', () => {
  assert.deepEqual(overriddenFileValues({ workers: 2, maxRequests: 5 }, { workers: 1, maxRequests: 5, envs: { A: '1' } }, {}), ['--workers=2 (wsgid.json: 1)']);
  assert.deepEqual(overriddenFileValues({}, { workers: 1 }, {}), []);
  assert.deepEqual(overriddenFileValues({ recv: ['tcp://a:1'] }, { recv: ['tcp://b:2'] }, {}), ['--recv=["tcp://a:1"] (wsgid.json: ["tcp://b:2"])']);
});
