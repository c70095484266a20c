/** What a HUP makes of a re-read configuration (src/config/reload.ts), from the option table's `reloadable`. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planReload } from '../../src/config/reload.js';
import { OPTION_LIST } from '../../src/config/options.js';
import { testSettings } from '../helpers/settings.js';

test('reloadable changes apply; the others keep their running value and are named', () => {
  const running = testSettings('/srv/site', { recv: ['tcp://127.0.0.1:1'], send: ['tcp://127.0.0.1:2'], workers: 2 });
  const next = {
    ...running,
    workers: 4,
    envs: { A: '1' },
    wsgiApp: 'hello:app',
    recv: ['tcp://127.0.0.1:3'],
    chroot: true,
  };
  const plan = planReload(running, next);
  assert.deepEqual(plan.changed.sort(), ['--env', '--workers', '--wsgi-app']);
  assert.deepEqual(plan.needsRestart.sort(), ['--chroot', '--recv']);
  assert.equal(plan.settings.workers, 4);
  assert.deepEqual(plan.settings.envs, { A: '1' });
  assert.equal(plan.settings.wsgiApp, 'hello:app');
  assert.deepEqual(plan.settings.recv, ['tcp://127.0.0.1:1']);
  assert.equal(plan.settings.chroot, false);
});

test('nothing changed: nothing named', () => {
  const s = testSettings('/srv/site');
  assert.deepEqual(planReload(s, { ...s, envs: { ...s.envs } }), { settings: s, changed: [], needsRestart: [] });
});

test('what cannot change without a restart is declared so (endpoints, chroot, the log and the master own)', () => {
  const fixed = OPTION_LIST.filter((o) => o.spec.commands.includes('start') && !o.spec.reloadable).map((o) => o.spec.flag);
  for (const flag of ['recv', 'send', 'chroot', 'no-daemon', 'stdout', 'access-log', 'max-queued', 'app-path']) assert.ok(fixed.includes(flag), flag);
  for (const flag of ['workers', 'timeout', 'max-requests', 'env', 'wsgi-app', 'max-memory', 'crash-window']) assert.ok(!fixed.includes(flag), flag);
});

test('--max-memory sizes: binary units, optional B/iB, decimals; anything else refused', async () => {
  const { parseSize, OPTIONS, Invalid } = await import('../../src/config/options.js');
  const MB = 2 ** 20;
  const cases: Array<[string, number]> = [['0', 0], ['1048576', MB], ['200M', 200 * MB], ['200mb', 200 * MB], ['1G', 2 ** 30], ['1.5GiB', 1.5 * 2 ** 30], ['512k', 512 * 1024], ['2T', 2 * 2 ** 40]];
  for (const [text, bytes] of cases) assert.equal(parseSize(text), bytes, text);
  for (const bad of ['', 'M', '-1M', '1X', '1 G B', '1e9']) {
    assert.equal(parseSize(bad), undefined, bad);
    const refused = OPTIONS.maxMemory.parse(bad);
    assert.ok(refused instanceof Invalid, bad);
    assert.match(refused.problem, /expected a size like 200M/);
  }
});
