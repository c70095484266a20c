/**
 * src/mongrel2/check.ts: what `wsgid check` says about a mongrel2 configuration (rows as db.ts
 * reads them from config.sqlite) for a wsgid; the integration test reads real databases that
 * m2sh wrote (test/integration/mongrel2-check.test.ts).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { checkMongrel2Db, connectSpecOf, endpointsMatch, type Mongrel2Db, type WsgidSide } from '../../src/mongrel2/check.js';

const good: Mongrel2Db = {
  handlers: [{ id: 1, send_spec: 'tcp://127.0.0.1:9997', send_ident: 'site-1', recv_spec: 'tcp://127.0.0.1:9996', recv_ident: '', protocol: 'tnetstring' }],
  routes: [{ path: '/', host_id: 1, target_id: 1, target_type: 'handler' }],
  hosts: [{ id: 1, server_id: 1, name: 'localhost' }],
  servers: [{ id: 1, uuid: 'u', name: 'main', chroot: '/var/www/m2' }],
  settings: [
    { key: 'limits.content_length', value: '1048576' },
    { key: 'upload.temp_store', value: '/tmp/upload.XXXXXX' },
    { key: 'download.flow_control', value: '1' },
  ],
};
const wsgid: WsgidSide = { appPath: '/srv/site', recv: ['tcp://127.0.0.1:9997'], send: ['tcp://127.0.0.1:9996'], mongrel2Chroot: '/var/www/m2' };
const problems = (db: Mongrel2Db, side: WsgidSide = wsgid) => checkMongrel2Db(db, side).filter((f) => f.level !== 'ok');
const withSettings = (settings: Mongrel2Db['settings']): Mongrel2Db => ({ ...good, settings });
const withHandler = (changes: Partial<Mongrel2Db['handlers'][number]>): Mongrel2Db => ({ ...good, handlers: [{ ...good.handlers[0]!, ...changes }] });

describe('checkMongrel2Db', () => {
  test('a matching configuration: one ok, nothing else', () => {
    assert.deepEqual(problems(good), []);
    assert.match(checkMongrel2Db(good, wsgid)[0]!.message, /matches --recv=tcp:\/\/127\.0\.0\.1:9997 --send=tcp:\/\/127\.0\.0\.1:9996/);
  });

  test('crossed --recv/--send: an error whose fix swaps them', () => {
    const [f, ...rest] = problems(good, { ...wsgid, recv: wsgid.send, send: wsgid.recv });
    assert.equal(rest.length, 0);
    assert.equal(f!.level, 'error');
    assert.match(f!.message, /crossed/);
    assert.match(f!.fix!, /--recv=tcp:\/\/127\.0\.0\.1:9997 --send=tcp:\/\/127\.0\.0\.1:9996/);
  });

  test('a recv_spec that is not --send, an unknown --recv, no route', () => {
    assert.match(problems(withHandler({ recv_spec: 'tcp://127.0.0.1:9000' }))[0]!.message, /listens for replies on tcp:\/\/127\.0\.0\.1:9000/);
    assert.match(problems(good, { ...wsgid, recv: ['tcp://127.0.0.1:1'] })[0]!.message, /no handler sends requests to --recv=tcp:\/\/127\.0\.0\.1:1/);
    assert.match(problems({ ...good, routes: [] })[0]!.message, /no route leads to/);
  });

  test('idents mongrel2 cannot use, JSON headers', () => {
    assert.match(problems(withHandler({ send_ident: 'my_site' }))[0]!.fix!, /send_ident='my-site'/);
    assert.match(problems(withHandler({ recv_ident: 'other' }))[0]!.message, /filters out wsgid's replies/);
    assert.deepEqual(problems(withHandler({ recv_ident: 'site' })), [], 'a prefix of the send_ident lets the replies through');
    const json = problems(withHandler({ protocol: 'json' }));
    assert.equal(json[0]!.level, 'warning');
  });

  test('limits.content_length below 4096 (also mongrel2\'s default when unset is fine)', () => {
    const low = problems(withSettings([...good.settings.filter((s) => s.key !== 'limits.content_length'), { key: 'limits.content_length', value: '1024' }]));
    assert.equal(low[0]!.level, 'error');
    assert.match(low[0]!.message, /limits\.content_length is 1024: below 4096/);
    assert.deepEqual(problems(withSettings(good.settings.filter((s) => s.key !== 'limits.content_length'))), []);
  });

  test('uploads: no temp store (warning), no --mongrel2-chroot or another one (errors), flow control off (warning)', () => {
    const noStore = problems(withSettings(good.settings.filter((s) => s.key !== 'upload.temp_store')));
    assert.deepEqual(noStore.map((f) => f.level), ['warning']);
    assert.match(noStore[0]!.message, /413/);
    const noChroot = problems(good, { ...wsgid, mongrel2Chroot: '' });
    assert.equal(noChroot[0]!.level, 'error');
    assert.match(noChroot[0]!.fix!, /--mongrel2-chroot=\/var\/www\/m2/);
    assert.match(problems(good, { ...wsgid, mongrel2Chroot: '/elsewhere' })[0]!.message, /not mongrel2's chroot \/var\/www\/m2/);
    const noCredits = problems(withSettings(good.settings.filter((s) => s.key !== 'download.flow_control')));
    assert.deepEqual(noCredits.map((f) => f.level), ['warning']);
    assert.match(noCredits[0]!.message, /download\.flow_control is off/);
  });

  test('no --recv in wsgid: the fix names the handler\'s endpoints as wsgid connects to them', () => {
    const [f] = problems(withHandler({ send_spec: 'tcp://*:9997', recv_spec: 'ipc://run/replies' }), { ...wsgid, recv: [], send: [] });
    assert.match(f!.fix!, /--recv=tcp:\/\/127\.0\.0\.1:9997 --send=ipc:\/\/\/var\/www\/m2\/run\/replies/);
  });
});

describe('endpointsMatch', () => {
  test('tcp: same port, and the bound address covers the one wsgid connects to', () => {
    assert.equal(endpointsMatch('tcp://*:9997', 'tcp://10.0.0.5:9997', '/c'), true);
    assert.equal(endpointsMatch('tcp://0.0.0.0:9997', 'tcp://127.0.0.1:9997', '/c'), true);
    assert.equal(endpointsMatch('tcp://127.0.0.1:9997', 'tcp://localhost:9997', '/c'), true);
    assert.equal(endpointsMatch('tcp://127.0.0.1:9997', 'tcp://127.0.0.1:9996', '/c'), false);
    assert.equal(endpointsMatch('tcp://10.0.0.1:9997', 'tcp://10.0.0.2:9997', '/c'), false);
  });
  test('ipc: paths inside the chroot, relative or absolute', () => {
    assert.equal(endpointsMatch('ipc://run/req', 'ipc:///var/www/m2/run/req', '/var/www/m2'), true);
    assert.equal(endpointsMatch('ipc:///run/req', 'ipc:///var/www/m2/run/req', '/var/www/m2'), true);
    assert.equal(endpointsMatch('ipc://run/req', 'ipc:///tmp/run/req', '/var/www/m2'), false);
    assert.equal(connectSpecOf('ipc://run/req', '/var/www/m2'), 'ipc:///var/www/m2/run/req');
  });
});
