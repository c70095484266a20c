/**
 * systemd's Type=notify protocol, against a real NOTIFY_SOCKET: a python3 listener binds a unix
 * datagram socket (Node cannot) and prints every datagram it receives, stamped with its own
 * CLOCK_MONOTONIC (the clock systemd ≥ 253 compares MONOTONIC_USEC with). wsgid runs in the
 * foreground (as the generated unit runs it) and as a daemon (MAINPID= handover), behind a real
 * mongrel2, with the native addon and with the systemd-notify fallback.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request } from '../helpers/http.js';
import { startWsgid, wsgidArgs } from '../helpers/wsgid.js';
import { alive, appFolderWith, runCli, workerPids } from '../helpers/processes.js';
import { NotifyListener as Listener } from '../helpers/notify-listener.js';

const APP = 'export default () => new Response(String(process.pid));\n';

describe('systemd Type=notify', () => {
  let m2: Mongrel2Handle;
  const dirs: string[] = [];
  const listeners: Listener[] = [];
  before(async () => {
    m2 = await startMongrel2();
  });
  after(async () => {
    for (const l of listeners) l.stop();
    await m2?.stop();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  async function setup(abstract = false): Promise<{ dir: string; listener: Listener }> {
    const dir = await appFolderWith(APP, 'wsgid-notify-');
    dirs.push(dir);
    const socket = abstract ? `@wsgid-test-${process.pid}-${dirs.length}-${Date.now()}` : path.join(dir, 'notify.sock');
    const listener = await Listener.start(socket, dir);
    listeners.push(listener);
    return { dir, listener };
  }

  async function servedBy(): Promise<number> {
    const r = await request(`${m2.baseUrl}/`);
    assert.equal(r.status, 200);
    return Number(r.body.toString());
  }

  test('foreground: READY=1 once the workers serve, RELOADING=1/READY=1 around `wsgid restart`, STOPPING=1 on stop', async () => {
    const { dir, listener } = await setup();
    const w = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--workers=2']), {
      cwd: dir,
      env: { NOTIFY_SOCKET: listener.socket, WATCHDOG_USEC: '3000000' },
    });
    try {
      const ready = await listener.next('READY');
      // Told only when both workers serve: right now two live workers answer through mongrel2.
      assert.equal(ready.datagram.fields.get('STATUS'), '2 workers serving');
      const before = await workerPids(dir);
      assert.equal(before.length, 2);
      assert.ok(before.includes(await servedBy()));
      assert.deepEqual(listener.messages.slice(0, ready.index).filter((m) => m.fields.has('READY') || m.fields.has('RELOADING')), []);

      // Workers and the app do not inherit systemd's variables (they cannot notify in the master's name).
      for (const pid of before) {
        const environ = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0');
        assert.ok(!environ.some((e) => /^(NOTIFY_SOCKET|WATCHDOG_USEC|WATCHDOG_PID)=/.test(e)), `worker ${pid} inherited systemd variables`);
      }
      // WatchdogSec=3 → WATCHDOG=1 from the master's loop, more than once.
      const dog = await listener.next('WATCHDOG', 0, '1');
      await listener.next('WATCHDOG', dog.index + 1, '1');

      const restart = await runCli(['restart', `--app-path=${dir}`]);
      assert.equal(restart.code, 0, restart.stderr);
      const reloading = await listener.next('RELOADING', ready.index + 1, '1');
      const usec = Number(reloading.datagram.fields.get('MONOTONIC_USEC'));
      // CLOCK_MONOTONIC of the sender: not after the listener's receipt, and recent.
      assert.ok(usec <= reloading.datagram.at && usec > reloading.datagram.at - 60_000_000, `MONOTONIC_USEC=${usec}, received at ${reloading.datagram.at}`);
      const reloaded = await listener.next('READY', reloading.index + 1, '1');
      assert.equal(reloaded.datagram.fields.get('STATUS'), '2 workers serving');
      // Ready again means the new workers serve and the old ones get no more requests.
      for (let i = 0; i < 6; i++) assert.ok(!before.includes(await servedBy()), 'an old worker answered after READY=1');

      assert.equal(await w.stop('SIGTERM'), 0, w.output());
      const stopping = await listener.next('STOPPING', reloaded.index + 1, '1');
      assert.match(stopping.datagram.fields.get('STATUS') ?? '', /^stopping/);
      const order = listener.keys().filter((k) => k !== 'STATUS' && k !== 'WATCHDOG');
      assert.deepEqual(order, ['READY', 'RELOADING', 'READY', 'STOPPING']);
    } finally {
      await w.stop('SIGKILL');
    }
  });

  test('daemon: `wsgid start` hands over with MAINPID=<daemon> READY=1; the daemon then reports reload and stop', async () => {
    const { dir, listener } = await setup(true);
    const h = m2.handler('app');
    const env = { ...process.env, NOTIFY_SOCKET: listener.socket, WATCHDOG_USEC: '4000000' };
    const start = await runCli([`--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`, '--workers=1'], 60_000, { env });
    assert.equal(start.code, 0, start.stderr);
    const master = Number(/master pid (\d+)/.exec(start.stdout)![1]);
    try {
      const ready = await listener.next('READY');
      assert.equal(ready.datagram.fields.get('MAINPID'), String(master));
      assert.equal(listener.messages.filter((m) => m.fields.has('READY')).length, 1, 'one READY=1: the daemon does not repeat it');
      await listener.next('WATCHDOG', ready.index + 1, '1');
      assert.equal(await runCli(['restart', `--app-path=${dir}`]).then((r) => r.code), 0);
      const reloading = await listener.next('RELOADING', ready.index + 1, '1');
      await listener.next('READY', reloading.index + 1, '1');
      const stop = await runCli(['stop', `--app-path=${dir}`]);
      assert.equal(stop.code, 0, stop.stderr);
      await listener.next('STOPPING', reloading.index + 1, '1');
    } finally {
      if (alive(master)) process.kill(master, 'SIGKILL');
    }
  });

  test('without the native addon: systemd-notify --pid=<master> sends the same messages', async () => {
    const { dir, listener } = await setup();
    const w = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--workers=1']), {
      cwd: dir,
      env: { NOTIFY_SOCKET: listener.socket, WSGID_NATIVE_ADDON: path.join(dir, 'no-such-addon.node') },
    });
    try {
      const ready = await listener.next('READY', 0, '1');
      assert.equal(ready.datagram.fields.get('MAINPID'), String(w.pid));
      assert.equal(ready.datagram.fields.get('STATUS'), '1 worker serving');
      assert.match(w.output(), /notifying systemd.*via=systemd-notify/);
      assert.equal(await w.stop('SIGTERM'), 0, w.output());
      await listener.next('STOPPING', ready.index + 1, '1');
    } finally {
      await w.stop('SIGKILL');
    }
  });

  test('a NOTIFY_SOCKET nobody listens on: a warning, and the app serves anyway', async () => {
    const dir = await appFolderWith(APP, 'wsgid-notify-');
    dirs.push(dir);
    const w = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--workers=1']), {
      cwd: dir,
      env: { NOTIFY_SOCKET: path.join(dir, 'nobody.sock') },
      readyUrl: `${m2.baseUrl}/`,
    });
    try {
      await w.waitForOutput(/could not notify systemd.*ENOENT/);
      assert.equal((await workerPids(dir)).length, 1);
    } finally {
      assert.equal(await w.stop('SIGTERM'), 0, w.output());
    }
  });
});

