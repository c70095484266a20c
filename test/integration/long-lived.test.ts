/**
 * Long-lived responses through a real mongrel2: while a response is open and idle, wsgid sends
 * mongrel2's keep-alive control message, so mongrel2's idle killer (limits.min_ping & co, made
 * aggressive here) spares long polls and quiet event streams; and the master's --timeout does not
 * kill an event stream once its head is out.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from '../helpers/http.js';
import { OpenClient, startPushServer, type PushServer } from '../helpers/push.js';

/** mongrel2 checks every second and kills a connection idle (no ping, no reads, no writes) for 2 s. */
const IDLE_KILLER = {
  'limits.min_ping': 2,
  'limits.min_read_rate': 300,
  'limits.min_write_rate': 300,
  'limits.kill_limit': 2,
  'limits.tick_timer': 1,
};

describe('idle killer vs keep-alive pings', () => {
  let withPings: PushServer;
  let without: PushServer;
  before(async () => {
    [withPings, without] = await Promise.all([
      startPushServer({ settings: IDLE_KILLER, env: { WSGID_KEEPALIVE_MS: '500' } }),
      startPushServer({ settings: IDLE_KILLER, env: { WSGID_KEEPALIVE_MS: '0' } }),
    ]);
  });
  after(async () => {
    await Promise.all([withPings?.stop(), without?.stop()]);
  });

  test('control: without pings mongrel2 kills an idle event stream', async () => {
    const client = new OpenClient(without.m2.port, '/events?id=control');
    await client.waitFor(/event: hello/);
    assert.ok(await client.waitClosed(15_000), 'mongrel2 should have killed the idle connection');
  });

  test('with pings an idle event stream outlives the idle limit several times over', async () => {
    const client = new OpenClient(withPings.m2.port, '/events?id=pinged');
    await client.waitFor(/event: hello/);
    assert.equal(await client.waitClosed(7_000), false, withPings.diagnostics());
    client.destroy();
  });

  test('with pings a long poll (nothing sent for 6 s) gets its answer', async () => {
    const res = await request(`${withPings.url}/poll?ms=6000`, { timeoutMs: 20_000 });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'late after 6000 ms');
  });
});

describe('master --timeout vs an event stream', () => {
  let s: PushServer;
  before(async () => {
    s = await startPushServer({ workers: 1, extra: ['--timeout=2'] });
  });
  after(async () => {
    await s?.stop();
  });

  test('an event stream whose head is out lives past --timeout=2 (no 504, not closed, worker kept)', async () => {
    const before = JSON.parse((await request(`${s.url}/rss`)).text) as { pid: number };
    const client = new OpenClient(s.m2.port, '/events?id=timeout&every=500');
    await client.waitFor(/event: hello/);
    await client.waitFor(/data: tick 9\n/, 15_000); // ~5 s, more than twice the timeout
    assert.equal(client.closed, false);
    assert.doesNotMatch(client.text, /504/);
    client.destroy();
    const afterwards = JSON.parse((await request(`${s.url}/rss`)).text) as { pid: number };
    assert.equal(afterwards.pid, before.pid, 'the worker was not replaced');
  });

  test('a long poll that sends nothing for longer than --timeout still gets the 504 (as designed)', async () => {
    const res = await request(`${s.url}/poll?ms=4000`, { timeoutMs: 20_000 });
    assert.equal(res.status, 504);
  });
});

for (const workers of [0, 1]) {
  test(`graceful stop (--workers=${workers}): an open event stream is closed at --graceful-timeout and wsgid exits 0`, async () => {
    const s = await startPushServer({ workers, extra: ['--graceful-timeout=2'] });
    try {
      const client = new OpenClient(s.m2.port, '/events?id=graceful-' + workers + '&every=100');
      await client.waitFor(/data: tick 1/);
      const started = Date.now();
      const code = await s.wsgid.stop('SIGTERM', 15_000);
      assert.equal(code, 0, s.wsgid.output());
      assert.ok(await client.waitClosed(5_000), 'the event stream was not closed');
      const took = Date.now() - started;
      assert.ok(took < 10_000, `stopping took ${took} ms`);
      await s.wsgid.waitForOutput(/graceful timeout: closing the connections/);
    } finally {
      await s.stop();
    }
  });
}
