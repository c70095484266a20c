/**
 * src/mongrel2/config.ts: the mongrel2.conf for an app folder. Whether m2sh and mongrel2 accept it
 * is the integration test's (test/integration/mongrel2-config.test.ts); here, what it must say:
 * the crossed specs, the settings wsgid needs, names mongrel2 accepts. Generated cases come from
 * fast-check with a fixed seed (MONGREL2_CONFIG_SEED to try another).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  MIN_CONTENT_LENGTH,
  appServerConfig,
  bindSpecOf,
  renderMongrel2Config,
  stableSendIdent,
  stableUuid,
  type AppServerInputs,
} from '../../src/mongrel2/config.js';

const SEED = Number(process.env['MONGREL2_CONFIG_SEED'] ?? 0x3e2);

const base: AppServerInputs = {
  root: '/srv/site',
  recv: ['tcp://127.0.0.1:9997'],
  send: ['tcp://127.0.0.1:9996'],
  chroot: '/var/www/mongrel2',
  port: 8080,
  host: 'localhost',
  bindAddr: '0.0.0.0',
  dirs: [],
};

/** key → value of the settings dict (numbers and strings as m2sh reads them). */
function settingsOf(text: string): Record<string, string> {
  const block = /settings = \{([\s\S]*?)\n\}/.exec(text)?.[1] ?? '';
  return Object.fromEntries([...block.matchAll(/^\s*"([^"]+)": (.+?),?$/gm)].map((m) => [m[1]!, m[2]!]));
}

describe('renderMongrel2Config', () => {
  test("wsgid's --recv is the handler's send_spec, its --send the recv_spec; tnetstring; every reply accepted", () => {
    const text = renderMongrel2Config(appServerConfig(base));
    assert.match(text, /Handler\(send_spec="tcp:\/\/127\.0\.0\.1:9997", send_ident="wsgid-site-[0-9a-f]{8}",\s+recv_spec="tcp:\/\/127\.0\.0\.1:9996", recv_ident="", protocol="tnetstring"\)/);
    assert.match(text, /routes=\{\s+"\/": handler_0\s+\}/);
    assert.match(text, /chroot="\/var\/www\/mongrel2"/);
    assert.match(text, /port=8080/);
  });

  test('uploads stay intact and large downloads are paced by credits', () => {
    const settings = settingsOf(renderMongrel2Config(appServerConfig(base)));
    assert.ok(Number(settings['limits.content_length']) >= MIN_CONTENT_LENGTH, JSON.stringify(settings));
    assert.match(settings['upload.temp_store'] ?? '', /^"\/tmp\/upload\.[^"]*XXXXXX"$/);
    assert.equal(settings['download.flow_control'], '1');
  });

  test('a static folder gets a Dir route before the handler (longest prefix wins anyway)', () => {
    const text = renderMongrel2Config(appServerConfig({ ...base, root: '/var/www/mongrel2/site', dirs: [{ route: '/static/', base: 'site/app/static/' }] }));
    assert.match(text, /static_0 = Dir\(base="site\/app\/static\/"/);
    assert.match(text, /"\/static\/": static_0,\s+"\/": handler_0/);
  });

  test('strings are quoted: a quote or backslash in a path cannot end the literal', () => {
    const text = renderMongrel2Config(appServerConfig({ ...base, chroot: '/srv/we"ird\\m2' }));
    assert.match(text, /chroot="\/srv\/we\\"ird\\\\m2"/);
  });

  test('no trailing comma in dicts (m2sh rejects one)', () => {
    const text = renderMongrel2Config(appServerConfig({ ...base, dirs: [{ route: '/static/', base: 'a/' }], extraSettings: { 'server.daemonize': 0 } }));
    assert.doesNotMatch(text, /,\s*\n\s*\}/);
  });
});

describe('bindSpecOf', () => {
  test('addresses stay, localhost becomes 127.0.0.1, a host name binds every interface with a note', () => {
    assert.deepEqual(bindSpecOf('tcp://127.0.0.1:9997', '/c'), { spec: 'tcp://127.0.0.1:9997' });
    assert.deepEqual(bindSpecOf('tcp://localhost:9997', '/c'), { spec: 'tcp://127.0.0.1:9997' });
    assert.deepEqual(bindSpecOf('tcp://*:9997', '/c'), { spec: 'tcp://*:9997' });
    const named = bindSpecOf('tcp://m2.example.com:9997', '/c');
    assert.equal(named.spec, 'tcp://*:9997');
    assert.match(named.note ?? '', /m2\.example\.com/);
  });

  test('an ipc path inside the chroot is given relative to it (mongrel2 binds after chrooting)', () => {
    assert.deepEqual(bindSpecOf('ipc:///var/www/m2/run/req', '/var/www/m2'), { spec: 'ipc://run/req' });
    assert.deepEqual(bindSpecOf('ipc:///var/www/m2/run/req', '/var/www/m2/'), { spec: 'ipc://run/req' });
    const outside = bindSpecOf('ipc:///tmp/req', '/var/www/m2');
    assert.equal(outside.spec, 'ipc:///tmp/req');
    assert.match(outside.note ?? '', /not inside mongrel2's chroot/);
    assert.match(bindSpecOf('ipc:///var/www/m2x/req', '/var/www/m2').note ?? '', /not inside/, 'a sibling with the same prefix is outside');
  });
});

describe('stable names', () => {
  test('send idents use only [A-Za-z0-9-] (mongrel2 drops replies otherwise), and stay the same per seed', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), fc.string(), (name, seed) => {
        const ident = stableSendIdent(name, seed);
        assert.match(ident, /^[A-Za-z0-9-]+$/);
        assert.equal(ident, stableSendIdent(name, seed));
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  test('server uuids are RFC 4122 shaped, one per app folder', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (a, b) => {
        assert.match(stableUuid(a), /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        assert.equal(stableUuid(a), stableUuid(a));
        if (a !== b) assert.notEqual(stableUuid(a), stableUuid(b));
      }),
      { seed: SEED, numRuns: 300 },
    );
  });
});
