/**
 * src/systemd (what to notify and when; the unit's quoting) and config/args.ts cliArgsOf, the
 * inverse of the command-line parser that systemd-unit writes ExecStart with. Generated cases
 * come from fast-check with a fixed seed (SYSTEMD_TEST_SEED to try another).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { NotifyPlan, checkNotifySocket, statusLine, watchdogMsFrom, type ServiceSnapshot } from '../../src/systemd/notify-plan.js';
import { environmentLine, execWord, renderUnit, unitName } from '../../src/systemd/unit.js';
import { checkMongrel2UnitInputs, mongrel2UnitName, renderMongrel2Unit } from '../../src/systemd/mongrel2-unit.js';
import { stableUuid } from '../../src/mongrel2/config.js';
import { cliArgsOf, parseCommandLine } from '../../src/config/args.js';
import { cliOptionsFor, parseValue, type OptionType, type OptionValues, type ValueOf } from '../../src/config/options.js';
import { systemdWords } from '../helpers/systemd-words.js';

const SEED = Number(process.env['SYSTEMD_TEST_SEED'] ?? 0x5d11);

const snap = (s: Partial<ServiceSnapshot> = {}): ServiceSnapshot => ({ serving: 0, booting: 0, replacing: 0, draining: 0, wanted: 2, ...s });
const fields = (message: string): Record<string, string> => Object.fromEntries(message.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));

describe('NotifyPlan', () => {
  test('start: STATUS progress, then READY=1 once, with the summary', () => {
    const plan = new NotifyPlan({ tickMs: 1000 });
    assert.deepEqual(plan.tick(snap({ booting: 2 }), 0).map(fields), [{ STATUS: 'starting: 0 of 2 workers ready' }]);
    assert.deepEqual(plan.tick(snap({ booting: 2 }), 1000), [], 'no repeat of an unchanged STATUS');
    assert.deepEqual(plan.tick(snap({ serving: 1, booting: 1 }), 2000).map(fields), [{ STATUS: 'starting: 1 of 2 workers ready' }]);
    assert.deepEqual(plan.ready(snap({ serving: 2 })).map(fields), [{ READY: '1', STATUS: '2 workers serving' }]);
    assert.deepEqual(plan.ready(snap({ serving: 2 })), []);
  });

  test('a reload: RELOADING=1 with MONOTONIC_USEC, READY=1 only when nothing is left to replace', () => {
    const plan = new NotifyPlan({ tickMs: 1000 });
    assert.deepEqual(plan.reloading(snap({ booting: 2 }), 5n), [], 'a HUP while starting is part of the start');
    plan.ready(snap({ serving: 2 }));
    const [reloading] = plan.reloading(snap({ replacing: 2 }), 123_456_789n);
    assert.deepEqual(fields(reloading!), { RELOADING: '1', MONOTONIC_USEC: '123456789', STATUS: 'reloading: 0 of 2 new workers ready, 2 old serving' });
    assert.deepEqual(plan.tick(snap({ replacing: 2, booting: 2 }), 1000).map(fields), []);
    assert.deepEqual(plan.tick(snap({ serving: 1, replacing: 2, booting: 1 }), 2000).map(fields), [{ STATUS: 'reloading: 1 of 2 new workers ready, 2 old serving' }]);
    // New workers serve, old ones drain: ready again.
    assert.deepEqual(plan.tick(snap({ serving: 2, draining: 2 }), 3000).map(fields), [{ READY: '1', STATUS: '2 workers serving' }]);
    assert.equal(plan.current, 'running');
    // A reload whose new workers cannot start keeps the old ones (unretired): also the end of it.
    plan.reloading(snap({ replacing: 2 }), 1n);
    assert.deepEqual(plan.tick(snap({ serving: 2 }), 4000).map(fields), [{ READY: '1', STATUS: '2 workers serving' }]);
  });

  test('stopping: STOPPING=1 once; no reload after it', () => {
    const plan = new NotifyPlan({ tickMs: 1000 });
    plan.ready(snap({ serving: 1, wanted: 1 }));
    assert.deepEqual(plan.stopping(snap({ draining: 1, wanted: 1 })).map(fields), [{ STOPPING: '1', STATUS: 'stopping: 1 worker finishing requests' }]);
    assert.deepEqual(plan.stopping(snap()), []);
    assert.deepEqual(plan.reloading(snap(), 1n), []);
  });

  test('a daemon child leaves READY=1 to the parent that hands over MAINPID', () => {
    const plan = new NotifyPlan({ tickMs: 1000, readyBy: 'parent' });
    assert.deepEqual(plan.ready(snap({ serving: 2 })), []);
    assert.deepEqual(plan.tick(snap({ serving: 2 }), 0), [], 'the STATUS the parent sent is not repeated');
    assert.equal(fields(plan.reloading(snap({ replacing: 2 }), 1n)[0]!).RELOADING, '1');
  });

  test('watchdog: WATCHDOG=1 every WATCHDOG_USEC/2 (sent up to one tick early), only for this pid', () => {
    const plan = new NotifyPlan({ tickMs: 1000, watchdogMs: 10_000 });
    const dogs: number[] = [];
    for (let now = 0; now <= 20_000; now += 1000) if (plan.tick(snap(), now).includes('WATCHDOG=1')) dogs.push(now);
    assert.deepEqual(dogs, [0, 4000, 8000, 12_000, 16_000, 20_000]);
    assert.equal(watchdogMsFrom('30000000', undefined, [42]), 30_000);
    assert.equal(watchdogMsFrom('30000000', '42', [42]), 30_000);
    assert.equal(watchdogMsFrom('30000000', '41', [42]), undefined, 'meant for another process');
    assert.equal(watchdogMsFrom('30000000', '41', [42, 41]), 30_000, 'a daemon child takes over from its parent');
    assert.equal(watchdogMsFrom('abc', undefined, [42]), undefined);
    assert.equal(watchdogMsFrom('0', undefined, [42]), undefined);
  });

  test('statusLine and NOTIFY_SOCKET checks', () => {
    assert.equal(statusLine('running', snap({ serving: 1, wanted: 1 })), '1 worker serving');
    assert.equal(statusLine('running', snap({ serving: 2, booting: 1, wanted: 3 })), '2 workers serving, 1 starting');
    assert.equal(statusLine('stopping', snap()), 'stopping');
    assert.equal(checkNotifySocket('/run/systemd/notify'), undefined);
    assert.equal(checkNotifySocket('@abstract'), undefined);
    assert.match(checkNotifySocket('relative') ?? '', /absolute path or @abstract/);
    assert.match(checkNotifySocket('/' + 'x'.repeat(120)) ?? '', /too long/);
  });
});

describe('unit quoting', () => {
  test('execWord: systemd reads back exactly the argument (generated strings)', () => {
    const chars = fc.constantFrom(...'aZ09 _-./=:@%$"\'\\\t\n;#{}*?~é€'.split(''));
    fc.assert(
      fc.property(fc.array(chars, { maxLength: 30 }).map((a) => a.join('')), fc.array(fc.string({ maxLength: 12 }), { maxLength: 4 }), (special, plain) => {
        const args = [special, ...plain];
        const line = args.map(execWord).join(' ');
        assert.ok(!line.includes('\n'), 'one line');
        assert.deepEqual(systemdWords(line), args);
      }),
      { seed: SEED, numRuns: 300 },
    );
    assert.equal(execWord('--workers=2'), '--workers=2');
    assert.equal(execWord('100%'), '"100%%"');
    assert.equal(execWord('$HOME'), '"$$HOME"');
  });

  test('Environment= lines and unit names', () => {
    assert.equal(environmentLine('WSGID_X', 'a "b" 5%'), 'Environment="WSGID_X=a \\"b\\" 5%%"');
    assert.equal(unitName('/srv/my site'), 'wsgid-my_site');
  });
});

describe('the mongrel2 unit (systemd-unit --mongrel2)', () => {
  const values = (unit: string, key: string): string[] => unit.split('\n').filter((l) => l.startsWith(key + '=')).map((l) => l.slice(key.length + 1));
  const render = (chroot: string, root = '/srv/site'): string =>
    renderMongrel2Unit({ root, chroot, uuid: stableUuid(root), wsgidUnit: unitName(root), m2sh: '/usr/bin/m2sh', mongrel2: '/usr/bin/mongrel2', generatedBy: 'test' });

  test("runs m2sh load then mongrel2 with mongrel2-config's uuid, in the chroot, restarted on failure", () => {
    const unit = render('/var/www/m2 50% $x');
    assert.deepEqual(values(unit, 'WorkingDirectory'), ['/var/www/m2 50%% $x']);
    assert.deepEqual(values(unit, 'ExecStartPre').map(systemdWords), [
      ['/bin/mkdir', '-p', 'logs', 'run', 'tmp'],
      ['/usr/bin/m2sh', 'load', '-config', 'mongrel2.conf', '-db', 'config.sqlite'],
    ]);
    assert.deepEqual(values(unit, 'ExecStart').map(systemdWords), [['/usr/bin/mongrel2', 'config.sqlite', stableUuid('/srv/site')]]);
    assert.deepEqual(values(unit, 'Type'), ['simple']);
    assert.deepEqual(values(unit, 'Restart'), ['on-failure']);
    assert.deepEqual(values(unit, 'WantedBy'), ['multi-user.target']);
    assert.equal(mongrel2UnitName(unitName('/srv/site')), 'wsgid-site-mongrel2');
  });

  test('a chroot a unit cannot name is refused; --after units are also wanted by the wsgid unit', () => {
    assert.match(checkMongrel2UnitInputs({ chroot: 'relative/m2' }) ?? '', /must be an absolute path/);
    assert.match(checkMongrel2UnitInputs({ chroot: '/a\nb' }) ?? '', /line break/);
    assert.equal(checkMongrel2UnitInputs({ chroot: '/var/www/m2' }), undefined);
    const base = { root: '/srv/site', node: '/usr/bin/node', cli: '/x/main.js', args: [], environment: [], stopTimeoutSec: 40, reload: true, notifyAccess: 'main' as const, generatedBy: 'test' };
    const wanting = renderUnit({ ...base, after: ['wsgid-site-mongrel2.service'] });
    assert.deepEqual(values(wanting, 'After'), ['network.target wsgid-site-mongrel2.service']);
    assert.deepEqual(values(wanting, 'Wants'), ['wsgid-site-mongrel2.service']);
    assert.deepEqual(values(renderUnit({ ...base, after: [] }), 'Wants'), []);
  });
});

describe('cliArgsOf', () => {
  test('parseCommandLine(cliArgsOf(values)) gives the values back (generated option sets)', () => {
    const options = cliOptionsFor('start').filter((o) => o.name !== 'appPath');
    const text = fc.string({ minLength: 1, maxLength: 12 }).filter((s) => !s.includes('\0'));
    const endpoint = fc.oneof(fc.integer({ min: 1, max: 65535 }).map((p) => `tcp://127.0.0.1:${p}`), fc.constantFrom('ipc:///tmp/a b', 'ipc://rel/x'));
    const envName = fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,6}$/);
    const valueOf = (name: string, type: string): fc.Arbitrary<unknown> => {
      if (name === 'recv' || name === 'send') return fc.array(endpoint, { minLength: 1, maxLength: 3 });
      if (type === 'int') return fc.integer({ min: 1, max: 200 });
      if (type === 'bool') return fc.boolean();
      if (type === 'list') return fc.array(text, { minLength: 1, maxLength: 3 });
      if (type === 'map') return fc.dictionary(envName, fc.string({ maxLength: 8 }), { minKeys: 1, maxKeys: 3 }).map((d) => ({ ...d }));
      return text;
    };
    const record = fc.record(Object.fromEntries(options.map(({ name, spec }) => [name, fc.option(valueOf(name, spec.type), { nil: undefined })])));
    fc.assert(
      fc.property(record, (generated) => {
        const values: Partial<OptionValues> = {};
        for (const { name, spec } of options) {
          const value = generated[name];
          if (value === undefined) continue;
          // A non-negatable boolean (--no-daemon) can only be given as true; other values must pass the option's check and parse.
          if (spec.type === 'bool' && value === false && spec.flag.startsWith('no-')) continue;
          const parsed = parseValue(spec, value as ValueOf<OptionType>);
          if ('problem' in parsed) continue;
          (values as Record<string, unknown>)[name] = parsed.value;
        }
        assert.deepEqual(parseCommandLine(['start', ...cliArgsOf(values)]).values, values);
      }),
      { seed: SEED, numRuns: 200 },
    );
  });
});
