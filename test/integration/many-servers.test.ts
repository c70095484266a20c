/**
 * Many mongrel2 servers, many hosts (docs/DEPLOYMENT-many-servers.md):
 * - one wsgid with two --recv/--send pairs serving two mongrel2 servers on loopback: every answer
 *   goes back through the server the request came from (their connection ids overlap: both count
 *   from 1), single process and under the master;
 * - separate hosts made of network namespaces: mongrel2 on one, two wsgid instances on two others,
 *   a bounded load from the mongrel2 host, and one instance stopped (SIGTERM) mid-load: the other
 *   keeps serving, and the test reports how many requests the stopped instance left unanswered.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request } from '../helpers/http.js';
import { REPO_ROOT, WSGID_CLI, startWsgid, type WsgidProcess } from '../helpers/wsgid.js';
import { createNetwork, isRoot, type Network } from '../helpers/netns.js';

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'many-servers');
const skip = existsSync(WSGID_CLI) ? false : 'wsgid CLI not built';

interface Answer {
  instance: string;
  pid: number;
  path: string;
  host: string;
  conn: number;
  sender: string;
}

async function appFolder(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wsgid-many-'));
  await mkdir(path.join(dir, 'app'), { recursive: true });
  await copyFile(path.join(FIXTURES, 'app.mjs'), path.join(dir, 'app', 'app.mjs'));
  return dir;
}

describe('one wsgid, two mongrel2 servers on loopback', { skip }, () => {
  let a: Mongrel2Handle;
  let b: Mongrel2Handle;
  let dir: string;
  before(async () => {
    // Server A accepts every reply (recv_ident ''); server B only replies starting with its
    // send_ident (the manual's recommendation). Different send_idents.
    a = await startMongrel2({ handlers: [{ name: 'app', route: '/', protocol: 'tnetstring', sendIdent: 'server-a-app' }] });
    b = await startMongrel2({
      handlers: [{ name: 'app', route: '/', protocol: 'json', sendIdent: 'server-b-app', recvIdent: 'server-b-app' }],
    });
    dir = await appFolder();
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const workers of [0, 2]) {
    test(`--workers=${workers}: requests to both servers are answered by the server they came to`, async () => {
      const ha = a.handler('app');
      const hb = b.handler('app');
      const wsgid = await startWsgid(
        [
          '--no-daemon',
          `--app-path=${dir}`,
          `--recv=${ha.recv}`,
          `--send=${ha.send}`,
          `--recv=${hb.recv}`,
          `--send=${hb.send}`,
          '--wsgi-app=app.mjs',
          `--workers=${workers}`,
        ],
        { cwd: dir, readyUrl: `${a.baseUrl}/ready`, env: { WSGID_INSTANCE: 'one' } },
      );
      try {
        await request(`${b.baseUrl}/ready`, { timeoutMs: 15_000 });
        // Fresh connections on both servers at once: connection ids 1, 2, 3... exist on both.
        const jobs: Array<Promise<void>> = [];
        for (let i = 0; i < 40; i++) {
          for (const [name, server] of [['a', a], ['b', b]] as const) {
            jobs.push(
              (async () => {
                const res = await request(`${server.baseUrl}/${name}/${i}`, {
                  headers: { Connection: 'close' },
                  timeoutMs: 10_000,
                });
                assert.equal(res.status, 200);
                const body = JSON.parse(res.body.toString()) as Answer;
                assert.equal(body.path, `/${name}/${i}`, `server ${name} delivered another server's answer`);
                assert.equal(body.host, `127.0.0.1:${server.port}`);
                assert.equal(body.sender, name === 'a' ? 'server-a-app' : 'server-b-app');
              })(),
            );
          }
        }
        await Promise.all(jobs);
      } catch (error) {
        (error as Error).message += `\n--- wsgid\n${wsgid.output()}\n--- mongrel2 A\n${a.log()}\n--- mongrel2 B\n${b.log()}`;
        throw error;
      } finally {
        const code = await wsgid.stop();
        assert.equal(code, 0, `wsgid exit code\n${wsgid.output()}`);
      }
    });
  }
});

interface LoadResult {
  answers: Array<[number, string, number, number]>;
  unanswered: number[];
  errors: Array<[number, string]>;
}

/** Run the load generator inside `netns`; `onProgress(done)` as it goes. */
function runLoad(
  wrap: string[],
  url: string,
  total: number,
  concurrency: number,
  timeoutMs: number,
  onProgress: (done: number) => void,
): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const argv = [...wrap, process.execPath, path.join(FIXTURES, 'load.mjs'), url, String(total), String(concurrency), String(timeoutMs)];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let seen = 0;
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      for (const line of out.slice(seen).split('\n').slice(0, -1)) {
        seen += line.length + 1;
        const m = /^progress (\d+)$/.exec(line);
        if (m) onProgress(Number(m[1]));
      }
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    const guard = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('exit', (code) => {
      clearTimeout(guard);
      const line = out.split('\n').find((l) => l.startsWith('result '));
      if (code !== 0 || line === undefined) reject(new Error(`load generator exited ${code}:\n${out}\n${err}`));
      else resolve(JSON.parse(line.slice('result '.length)) as LoadResult);
    });
  });
}

describe('separate hosts (network namespaces): one mongrel2, two wsgid instances, one stopped mid-load', { skip }, () => {
  let net: Network | undefined;
  let m2: Mongrel2Handle | undefined;
  const instances: WsgidProcess[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const w of instances) await w.stop('SIGKILL', 2000);
    await m2?.stop();
    await net?.destroy();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  test('the other instance keeps serving; unanswered requests are counted', async (t) => {
    assert.ok(isRoot, 'this test needs root to create network namespaces (ip netns); run the suite as root');
    net = await createNetwork(['m2', 'w1', 'w2']);
    m2 = await startMongrel2({
      bindAddr: net.addr('m2'),
      netns: net.ns('m2'),
      handlers: [{ name: 'app', route: '/', protocol: 'tnetstring' }],
    });
    const h = m2.handler('app');
    assert.ok(h.recv.includes(net.addr('m2')), `handler endpoints on the namespace address: ${h.recv}`);
    for (const name of ['w1', 'w2']) {
      const dir = await appFolder();
      dirs.push(dir);
      const w = await startWsgid(
        ['--no-daemon', `--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`, '--wsgi-app=app.mjs', '--workers=2'],
        { cwd: dir, wrap: net.exec(name), env: { WSGID_INSTANCE: name, WSGID_TEST_DELAY_MS: '20' } },
      );
      instances.push(w);
      await w.waitForOutput('all workers ready', 20_000);
    }
    const [w1, w2] = instances as [WsgidProcess, WsgidProcess];
    const url = `http://${net.addr('m2')}:${m2.port}/`;
    const diagnostics = (): string =>
      `--- w1\n${w1.output()}\n--- w2\n${w2.output()}\n--- mongrel2\n${m2!.log()}`;

    // Warm-up: both instances connected to mongrel2 (PUSH round-robins across connected peers).
    let both = false;
    for (let round = 0; round < 20 && !both; round++) {
      const warm = await runLoad(net.exec('m2'), url, 20, 4, 10_000, () => {});
      both = new Set(warm.answers.map(([, instance]) => instance)).size === 2;
      if (!both) await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(both, `both instances answer before the load\n${diagnostics()}`);

    // The load: 10 concurrent keep-alive clients, 400 requests, 10 s timeout each; w1 gets SIGTERM
    // after 100 answers.
    const TOTAL = 400;
    let stopAt = 0;
    let stopped: Promise<number> | undefined;
    const result = await runLoad(net.exec('m2'), url, TOTAL, 10, 10_000, (done) => {
      if (done >= 100 && stopped === undefined) {
        stopAt = Date.now();
        stopped = w1.stop('SIGTERM', 15_000);
      }
    });
    assert.ok(stopped, 'the instance was stopped during the load');
    assert.equal(await stopped, 0, `w1 exit code\n${diagnostics()}`);

    const by = (instance: string, after = 0): number =>
      result.answers.filter(([, who, at]) => who === instance && at >= after).length;
    const unanswered = result.unanswered.length;
    const report =
      `${TOTAL} requests, 10 clients: w1 answered ${by('w1')} (${by('w1', stopAt)} after its SIGTERM), ` +
      `w2 answered ${by('w2')} (${by('w2', stopAt)} after), unanswered ${unanswered}` +
      (unanswered > 0 ? ` (requests ${result.unanswered.join(', ')})` : '') +
      `, errors ${result.errors.length}`;
    console.log(`# many-servers: ${report}`);
    t.diagnostic(report);

    assert.deepEqual(result.errors, [], `errors\n${diagnostics()}`);
    assert.equal(result.answers.length + unanswered, TOTAL);
    assert.ok(result.answers.every(([, , , status]) => status === 200), 'every answer is a 200');
    assert.ok(by('w2', stopAt) > 0, `w2 kept serving after w1 stopped\n${report}`);
    // After w1 is gone, everything goes to w2: at most the requests caught in w1's pipe are lost.
    assert.ok(unanswered <= 10, `too many unanswered requests: ${report}\n${diagnostics()}`);
  });
});
