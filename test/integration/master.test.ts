/**
 * The master (src/master/, src/dispatch/) against real processes: a real mongrel2, the wsgid CLI in
 * the foreground with --workers=2, and real HTTP clients. Loads are bounded (hundreds of requests,
 * 10 concurrent); waits are generous and bounded.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rm, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request, RawConnection, rawRequest } from '../helpers/http.js';
import { startWsgid, wsgidArgs, type WsgidProcess } from '../helpers/wsgid.js';
import { appFolderWith, waitFor, workerPids } from '../helpers/processes.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const APP = `
export default {
  async fetch(req) {
    const url = new URL(req.url);
    if (url.pathname === '/hang') return new Promise(() => {});
    const ms = Number(url.searchParams.get('ms') ?? 0);
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
    return new Response('pid=' + process.pid + ' path=' + url.pathname + ' i=' + (url.searchParams.get('i') ?? ''));
  },
};
`;

function makeApp(source = APP): Promise<string> {
  return appFolderWith(source, 'wsgid-master-');
}



interface Status {
  workers: Array<{ pid: number; state: string; retiring: boolean }>;
  requests: { served: number; answered502: number; answered504: number; inFlight: number };
  restarts: number;
  recycled: number;
  reloads: number;
}
async function readStatus(dir: string): Promise<Status | undefined> {
  try {
    return JSON.parse(await readFile(path.join(dir, 'pid', 'status.json'), 'utf8')) as Status;
  } catch {
    return undefined;
  }
}


/** Two serving workers, none draining: the pool is settled. */
async function settled(dir: string, n: number): Promise<number[]> {
  return waitFor(`${n} settled workers`, async () => {
    const s = await readStatus(dir);
    const pids = await workerPids(dir);
    if (!s || s.workers.length !== n || !s.workers.every((w) => w.state === 'serving' && !w.retiring)) return undefined;
    if (pids.length !== n) return undefined;
    return pids;
  }, 20_000);
}

interface LoadResult {
  total: number;
  ok: number;
  statuses: Record<number, number>;
  /** Requests that got no HTTP answer at all (reset, timeout). */
  unanswered: number;
  errors: string[];
  pids: Set<string>;
}

/** `total` requests on fresh connections, `concurrency` at a time. `onProgress(done)` after each. */
async function load(
  baseUrl: string,
  total: number,
  concurrency: number,
  pathOf: (i: number) => string,
  onProgress?: (done: number) => void,
): Promise<LoadResult> {
  const r: LoadResult = { total, ok: 0, statuses: {}, unanswered: 0, errors: [], pids: new Set() };
  let next = 0;
  let done = 0;
  const one = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      try {
        const res = await request(baseUrl + pathOf(i), { timeoutMs: 30_000 });
        r.statuses[res.status] = (r.statuses[res.status] ?? 0) + 1;
        if (res.status === 200) {
          r.ok++;
          r.pids.add(/pid=(\d+)/.exec(res.text)?.[1] ?? '?');
        }
      } catch (err) {
        r.unanswered++;
        if (r.errors.length < 5) r.errors.push(String(err));
      }
      done++;
      onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, one));
  return r;
}

describe('master with --workers=2', { timeout: 300_000 }, () => {
  let m2: Mongrel2Handle;
  let dir: string;
  let wsgid: WsgidProcess;

  before(async () => {
    m2 = await startMongrel2();
    dir = await makeApp();
    wsgid = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--workers=2', '--graceful-timeout=10']), {
      readyUrl: `${m2.baseUrl}/ready`,
    });
    await settled(dir, 2);
  });

  after(async () => {
    const code = await wsgid?.stop('SIGTERM', 20_000);
    await m2?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    assert.equal(code, 0, wsgid?.output());
  });

  test('requests are answered, by both workers', async () => {
    const r = await load(m2.baseUrl, 100, 10, (i) => `/hello?i=${i}&ms=5`);
    assert.equal(r.unanswered, 0, r.errors.join('\n'));
    assert.equal(r.ok, 100);
    assert.equal(r.pids.size, 2, `served by ${[...r.pids].join(', ')}`);
    const res = await request(`${m2.baseUrl}/x`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['x-wsgid'] ?? ''), /\d/);
  });

  test('pipelined requests on one keep-alive connection are answered in order', async () => {
    const conn = await RawConnection.connect(m2.baseUrl);
    try {
      // Earlier requests take longer: only a sticky, ordered worker answers in order.
      let bytes = '';
      for (let i = 0; i < 6; i++) bytes += rawRequest('GET', `/pipe?i=${i}&ms=${60 - i * 10}`).toString('latin1');
      conn.write(Buffer.from(bytes, 'latin1'));
      const pids = new Set<string>();
      for (let i = 0; i < 6; i++) {
        const res = await conn.readResponse({ timeoutMs: 10_000 });
        assert.equal(res.status, 200);
        assert.match(res.text, new RegExp(`i=${i}$`));
        pids.add(/pid=(\d+)/.exec(res.text)![1]!);
      }
      assert.equal(pids.size, 1, 'one connection, one worker');
    } finally {
      conn.destroy();
    }
  });

  test('kill -9 of a worker under load: every request answered, the worker respawned', async () => {
    const before = await settled(dir, 2);
    const victim = before[0]!;
    let killed = false;
    const r = await load(
      m2.baseUrl,
      400,
      10,
      (i) => `/k9?i=${i}&ms=10`,
      (done) => {
        if (!killed && done >= 100) {
          killed = true;
          process.kill(victim, 'SIGKILL');
        }
      },
    );
    assert.ok(killed);
    const s502 = r.statuses[502] ?? 0;
    console.log(`# kill -9: ${r.total} requests, ${r.ok} ok, ${s502} answered 502, ${r.unanswered} unanswered`);
    assert.equal(r.unanswered, 0, r.errors.join('\n'));
    assert.equal(r.ok + s502, r.total, JSON.stringify(r.statuses));
    const after = await settled(dir, 2);
    assert.ok(!after.includes(victim), 'the killed worker is gone');
    assert.equal(after.length, 2);
    const s = await readStatus(dir);
    assert.ok(s && s.restarts >= 1);
  });

  test('HUP rolling reloads under load: nothing lost, no 502', async () => {
    const first = await settled(dir, 2);
    let reloads = 0;
    const loadDone = load(m2.baseUrl, 600, 10, (i) => `/hup?i=${i}&ms=5`);
    const reloader = (async () => {
      for (let k = 0; k < 3; k++) {
        await sleep(400);
        process.kill(wsgid.pid, 'SIGHUP');
        reloads++;
        await settled(dir, 2);
      }
    })();
    const [r] = await Promise.all([loadDone, reloader]);
    console.log(`# HUP x${reloads}: ${r.total} requests, ${r.ok} ok, statuses ${JSON.stringify(r.statuses)}, ${r.unanswered} unanswered`);
    assert.equal(r.unanswered, 0, r.errors.join('\n'));
    assert.equal(r.statuses[502] ?? 0, 0);
    assert.equal(r.ok, r.total);
    const now = await settled(dir, 2);
    assert.ok(now.every((p) => !first.includes(p)), `all workers replaced: ${first} → ${now}`);
  });

  test('TTIN/TTOU change the number of workers', async () => {
    await settled(dir, 2);
    process.kill(wsgid.pid, 'SIGTTIN');
    await settled(dir, 3);
    // One at a time: the kernel merges a signal sent while the same one is still pending.
    process.kill(wsgid.pid, 'SIGTTOU');
    await settled(dir, 2);
    process.kill(wsgid.pid, 'SIGTTOU');
    await settled(dir, 1);
    process.kill(wsgid.pid, 'SIGTTIN');
    const pids = await settled(dir, 2);
    assert.equal(pids.length, 2);
    const r = await load(m2.baseUrl, 50, 10, (i) => `/after-ttou?i=${i}`);
    assert.equal(r.ok, 50);
  });
});

describe('master: timeouts, recycling, load errors', { timeout: 300_000 }, () => {
  let m2: Mongrel2Handle;
  const dirs: string[] = [];

  before(async () => {
    m2 = await startMongrel2();
  });
  after(async () => {
    await m2?.stop();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  test('a hanging request gets a 504 at --timeout=2 and its worker is replaced', async () => {
    const dir = await makeApp();
    dirs.push(dir);
    const w = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--workers=2', '--timeout=2', '--graceful-timeout=3']), {
      readyUrl: `${m2.baseUrl}/ready`,
    });
    try {
      const before = await settled(dir, 2);
      const t0 = Date.now();
      const res = await request(`${m2.baseUrl}/hang`, { timeoutMs: 15_000 });
      const took = Date.now() - t0;
      assert.equal(res.status, 504);
      assert.equal(res.headers['connection'], 'close');
      assert.match(String(res.headers['x-wsgid'] ?? ''), /\d/);
      assert.ok(took >= 1900 && took < 8000, `504 after ${took} ms`);
      const after = await waitFor('a replacement worker', async () => {
        const pids = await settled(dir, 2);
        return pids.some((p) => !before.includes(p)) && before.some((p) => !pids.includes(p)) ? pids : undefined;
      }, 20_000);
      assert.equal(after.length, 2);
      // Others keep being served.
      const r = await load(m2.baseUrl, 40, 10, (i) => `/ok?i=${i}`);
      assert.equal(r.ok, 40);
    } finally {
      assert.equal(await w.stop('SIGTERM', 20_000), 0, w.output());
    }
  });

  test('max-requests recycling under load loses nothing', async () => {
    const dir = await makeApp();
    dirs.push(dir);
    const w = await startWsgid(
      wsgidArgs(m2.handler('app'), dir, ['--workers=2', '--max-requests=60', '--max-requests-jitter=20']),
      { readyUrl: `${m2.baseUrl}/ready` },
    );
    try {
      const before = await settled(dir, 2);
      const r = await load(m2.baseUrl, 500, 10, (i) => `/recycle?i=${i}&ms=10`);
      console.log(`# max-requests: ${r.total} requests, ${r.ok} ok, statuses ${JSON.stringify(r.statuses)}, ${r.unanswered} unanswered, ${r.pids.size} worker pids`);
      assert.equal(r.unanswered, 0, r.errors.join('\n'));
      assert.equal(r.statuses[502] ?? 0, 0);
      assert.equal(r.ok, r.total);
      assert.ok(r.pids.size >= 3, `served by ${r.pids.size} workers`);
      const now = await settled(dir, 2);
      assert.ok(now.every((p) => !before.includes(p)));
      const s = await readStatus(dir);
      assert.ok(s && s.recycled >= 2, JSON.stringify(s));
    } finally {
      assert.equal(await w.stop('SIGTERM', 20_000), 0, w.output());
    }
  });

  test('max-requests: a worker serves no more than one credit beyond its limit while its replacement boots', async () => {
    const dir = await makeApp();
    dirs.push(dir);
    const w = await startWsgid(
      wsgidArgs(m2.handler('app'), dir, ['--workers=1', '--max-requests=50', '--worker-connections=10', '--no-access-log']),
      { readyUrl: `${m2.baseUrl}/ready` },
    );
    try {
      await settled(dir, 1);
      const r = await load(m2.baseUrl, 600, 10, (i) => `/overshoot?i=${i}`);
      assert.equal(r.unanswered, 0, r.errors.join('\n'));
      assert.equal(r.ok, r.total, JSON.stringify(r.statuses));
      assert.ok(r.pids.size >= 3, `served by ${r.pids.size} workers`);
      // Each recycled worker's count, from the master's log ("worker exited" … served).
      const served = [...w.output().matchAll(/\[master \d+\] worker exited .*served=(\d+)/g)].map((m) => Number(m[1]));
      assert.ok(served.length >= 2, w.output().slice(-3000));
      // 50, plus what it held when it asked to retire (≤ 10), plus the bound (10); the readyUrl probe.
      const over = served.filter((n) => n > 50 + 10 + 10 + 1);
      assert.deepEqual(over, [], `served per recycled worker: ${served.join(', ')}`);
    } finally {
      assert.equal(await w.stop('SIGTERM', 20_000), 0, w.output());
    }
  });

  test('an app that throws at load time: the master exits non-zero with the reason logged', async () => {
    const dir = await makeApp(`throw new Error('boom at load time');\nexport default { fetch() { return new Response('x'); } };\n`);
    dirs.push(dir);
    const w = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--workers=2']));
    const code = await Promise.race([w.exited, sleep(30_000).then(() => -1)]);
    if (code === -1) await w.stop('SIGKILL');
    assert.notEqual(code, 0, w.output());
    assert.notEqual(code, -1, `did not exit:\n${w.output()}`);
    assert.equal(code, 4, w.output());
    assert.match(w.output(), /boom at load time/);
    assert.match(w.output(), /giving up/);
    assert.deepEqual(await workerPids(dir), []);
    const masters = await readdir(path.join(dir, 'pid', 'master'));
    assert.deepEqual(masters.filter((n) => n.endsWith('.pid')), []);
  });
});
