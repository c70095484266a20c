/**
 * Status and metrics, against a real mongrel2 and real processes:
 * - metrics: seeded requests with known statuses through mongrel2, /metrics scraped with a real
 *   HTTP client, parsed by the official Prometheus Python client and by a strict grammar; the
 *   counters match exactly (workers and --workers=0), a worker's death keeps its totals, the
 *   master's own 502 is counted;
 * - status: per-worker table with a WSGI worker's Python child, --json (schema 1), --watch frames;
 * - endpoints: swapped --recv/--send diagnosed (the terminal of `wsgid start` and the log), endpoints
 *   nobody listens on warned about, disconnects and reconnects logged and shown.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { Push, Subscriber } from 'zeromq';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request } from '../helpers/http.js';
import { REPO_ROOT, WSGID_CLI, startWsgid, wsgidArgs, type WsgidProcess } from '../helpers/wsgid.js';
import { alive, cliAppFolder, runCli, waitFor } from '../helpers/processes.js';
import { parseStrict, parseWithPrometheusClient, valueOf, type ParsedSample } from '../helpers/prometheus.js';
import { prng } from '../helpers/prng.js';

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'status-metrics');
const STATUSES = [200, 201, 204, 301, 302, 304, 400, 404, 418, 429, 500, 503];
const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'other'];

function appFolder(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsgid-status-metrics-'));
  mkdirSync(path.join(dir, 'app'));
  for (const [name, fixture] of Object.entries(files)) copyFileSync(path.join(FIXTURES, fixture), path.join(dir, 'app', name));
  return dir;
}

interface StatusFile {
  master: { pid: number; mode?: string; rss?: number };
  metrics?: string;
  endpoints?: Array<{ role: string; server: number; address: string; state: string; connects: number; disconnects: number; subscribed?: boolean; problem?: string }>;
  workers: Array<{ pid: number; state: string; gateway?: string; rss?: number; cpu?: number; children?: Array<{ pid: number; rss: number }> }>;
  requests: { served: number; inFlight: number };
}

function readStatusFile(dir: string): StatusFile | undefined {
  try {
    return JSON.parse(readFileSync(path.join(dir, 'pid', 'status.json'), 'utf8')) as StatusFile;
  } catch {
    return undefined;
  }
}


async function scrape(url: string): Promise<{ text: string; samples: ParsedSample[] }> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  const text = await res.text();
  return { text, samples: parseStrict(text).samples };
}

const requestsOf = (samples: ParsedSample[], gateway: string, code: string): number => {
  const found = samples.find((s) => s.name === 'wsgid_requests_total' && s.labels.gateway === gateway && s.labels.code === code);
  return found?.value ?? 0;
};
const totalOf = (samples: ParsedSample[], gateway: string): number => CLASSES.reduce((sum, c) => sum + requestsOf(samples, gateway, c), 0);

/** Send `n` seeded requests through mongrel2; returns how many of each class were sent. */
async function sendSeeded(m2: Mongrel2Handle, n: number, seed: number): Promise<Record<string, number>> {
  const random = prng(seed);
  const sent: Record<string, number> = Object.fromEntries(CLASSES.map((c) => [c, 0]));
  const codes = Array.from({ length: n }, () => STATUSES[Math.floor(random() * STATUSES.length)]!);
  // A few at a time: concurrency without flooding the busy test machine.
  for (let i = 0; i < codes.length; i += 6) {
    await Promise.all(
      codes.slice(i, i + 6).map(async (code) => {
        const res = await request(`${m2.baseUrl}/s/${code}`);
        assert.equal(res.status, code);
        sent[`${Math.floor(code / 100)}xx`]!++;
      }),
    );
  }
  return sent;
}

/** Both parsers agree on every sample, and the histogram is well formed. */
async function checkExposition(text: string, samples: ParsedSample[]): Promise<void> {
  const oracle = await parseWithPrometheusClient(text);
  const key = (s: ParsedSample): string => `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`;
  const ours = new Map(samples.map((s) => [key(s), s.value]));
  assert.equal(oracle.length, samples.length);
  for (const s of oracle) assert.equal(ours.get(key(s)), s.value, key(s));
  const types = new Map(oracle.map((s) => [s.family, s.type]));
  assert.equal(types.get('wsgid_requests'), 'counter');
  assert.equal(types.get('wsgid_request_duration_seconds'), 'histogram');
  for (const gateway of new Set(samples.filter((s) => s.name === 'wsgid_request_duration_seconds_count').map((s) => s.labels.gateway!))) {
    const buckets = samples.filter((s) => s.name === 'wsgid_request_duration_seconds_bucket' && s.labels.gateway === gateway);
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, 'cumulative buckets');
    assert.equal(buckets.at(-1)!.labels.le, '+Inf');
    assert.equal(buckets.at(-1)!.value, valueOf(samples, 'wsgid_request_duration_seconds_count', { gateway }));
  }
}

describe('metrics through a real mongrel2', () => {
  let m2: Mongrel2Handle;
  before(async () => {
    m2 = await startMongrel2({ handlers: [{ name: 'app', route: '/', protocol: 'tnetstring' }] });
  });
  after(async () => {
    await m2.stop();
  });

  for (const workers of [2, 0]) {
    test(`--workers=${workers}: request counters by status class match what was sent, exactly`, async () => {
      const dir = appFolder({ 'server.mjs': 'server.mjs' });
      const wsgid = await startWsgid(wsgidArgs(m2.handler('app'), dir, [`--workers=${workers}`, '--metrics=127.0.0.1:0']), {
        cwd: dir,
        readyUrl: `${m2.baseUrl}/`,
      });
      try {
        const url = await waitFor('the metrics URL in status.json', async () => readStatusFile(dir)?.metrics);
        assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
        const gateway = 'fetch';
        // The readiness probe made requests already: count from a baseline.
        const base = await waitFor('the probe requests counted', async () => {
          const s = await scrape(url);
          return totalOf(s.samples, gateway) > 0 && s.samples;
        });
        const sent = await sendSeeded(m2, 60, 10 + workers);
        const baseTotal = totalOf(base, gateway);
        const { text, samples } = await waitFor('the workers to report every request', async () => {
          const s = await scrape(url);
          return totalOf(s.samples, gateway) >= baseTotal + 60 && s;
        });
        for (const c of CLASSES) assert.equal(requestsOf(samples, gateway, c) - requestsOf(base, gateway, c), sent[c], `class ${c}`);
        assert.equal(
          valueOf(samples, 'wsgid_request_duration_seconds_count', { gateway }) - valueOf(base, 'wsgid_request_duration_seconds_count', { gateway }),
          60,
        );
        await checkExposition(text, samples);
        assert.equal(valueOf(samples, 'wsgid_info', { mode: workers === 0 ? 'single' : 'workers' }), 1);
        for (const role of ['recv', 'send']) assert.equal(valueOf(samples, 'wsgid_endpoint_connected', { role, server: '0' }), 1);
        assert.ok(valueOf(samples, 'wsgid_process_resident_memory_bytes', { role: 'master' }) > 10 << 20);
        if (workers > 0) {
          assert.equal(valueOf(samples, 'wsgid_workers', { state: 'serving' }), workers);
          assert.equal(samples.filter((s) => s.name === 'wsgid_process_resident_memory_bytes' && s.labels.role === 'worker').length, workers);
          // A worker that dies keeps its totals; the master's own 502 is counted.
          const crash = await request(`${m2.baseUrl}/crash`);
          assert.equal(crash.status, 502);
          const after = await waitFor('the restart counted', async () => {
            const s = await scrape(url);
            return valueOf(s.samples, 'wsgid_worker_restarts_total') === 1 && s.samples;
          });
          assert.equal(valueOf(after, 'wsgid_master_answers_total', { code: '502' }), 1);
          assert.equal(requestsOf(after, 'master', '5xx'), 1);
          assert.ok(totalOf(after, gateway) >= totalOf(samples, gateway), 'totals never go down');
        }
        const notFound = await fetch(url.replace('/metrics', '/other'));
        assert.equal(notFound.status, 404);
      } finally {
        assert.equal(await wsgid.stop(), 0, wsgid.output());
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

describe('status', () => {
  let m2: Mongrel2Handle;
  let wsgid: WsgidProcess;
  let dir: string;
  before(async () => {
    m2 = await startMongrel2({ handlers: [{ name: 'app', route: '/', protocol: 'tnetstring' }] });
    dir = appFolder({ 'app.py': 'app.py' });
    wsgid = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--workers=2', '--wsgi-app=app:application']), {
      cwd: dir,
      readyUrl: `${m2.baseUrl}/`,
    });
  });
  after(async () => {
    const code = await wsgid.stop();
    await m2.stop();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(code, 0, wsgid.output());
  });

  test('per worker: pid, state, age, served, in flight, RSS, CPU, and the Python child', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await request(`${m2.baseUrl}/`)).status, 200);
    // The numbers are the master's last tick (heartbeats up to a second behind): wait for a tick
    // that has counted the requests, heard from both workers and sampled them twice, with their
    // Python child.
    const file = await waitFor('a status with the requests counted and both workers sampled', async () => {
      const s = readStatusFile(dir);
      return (
        s?.workers.length === 2 &&
        s.requests.served >= 5 &&
        s.requests.inFlight === 0 &&
        // gateway: from a worker's first heartbeat, which may come after the tick that sampled it.
        s.workers.every((w) => w.state === 'serving' && w.cpu !== undefined && w.gateway !== undefined && (w.children?.length ?? 0) >= 1) &&
        s
      );
    });
    for (const w of file.workers) {
      const child = w.children![0]!;
      assert.match(readFileSync(`/proc/${child.pid}/cmdline`, 'latin1'), /python/);
      assert.equal(Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]), w.pid);
      assert.ok(w.rss! > 10 << 20 && child.rss > 1 << 20);
    }

    const text = await runCli(['status', `--app-path=${dir}`]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^Status: Running\nMaster pid\\(s\\): ${wsgid.pid}\nWorker pid\\(s\\): \\d+, \\d+\n`));
    assert.match(text.stdout, /^Master \d+: up \d+[smhd].*, workers 2 serving \/ 2 wanted, rss [\d.]+ MB, cpu [\d.]+%$/m);
    assert.match(text.stdout, /^Requests: served \d+, in flight 0, queued 0, 502: 0, 503: 0, 504: 0$/m);
    assert.match(text.stdout, /^ {2}PID +STATE +AGE +SERVED +IN FLIGHT +RSS +CPU$/m);
    for (const w of file.workers) {
      assert.match(text.stdout, new RegExp(`^  ${w.pid} +serving +\\d+[smhd]\\S* +\\d+ +0 +[\\d.]+ MB +[\\d.]+%$`, 'm'));
      assert.match(text.stdout, new RegExp(`^   └ ${w.children![0]!.pid} +child +[\\d.]+ MB +[\\d.]+%$`, 'm'));
    }
    assert.match(text.stdout, /^ {2}--recv\[0\] +tcp:\/\/127\.0\.0\.1:\d+ +connected$/m);
    assert.match(text.stdout, /^ {2}--send\[0\] +tcp:\/\/127\.0\.0\.1:\d+ +connected$/m);

    const json = await runCli(['status', '--json', `--app-path=${dir}`]);
    const report = JSON.parse(json.stdout) as {
      schema: number;
      workers: Array<{ pid: number; id: number; state: string; rss: number; cpu: number; served: number; gateway: string; children: Array<{ pid: number; rss: number }> }>;
      endpoints: Array<{ role: string; state: string; subscribed?: boolean }>;
      requests: { served: number; queued: number; answered502: number };
      master: Array<{ pid: number; rss: number; alive: boolean }>;
    };
    assert.equal(report.schema, 1);
    assert.equal(report.workers.length, 2);
    for (const w of report.workers) {
      assert.equal(w.state, 'serving');
      assert.equal(w.gateway, 'wsgi');
      assert.ok(w.rss > 0 && typeof w.cpu === 'number' && w.children.length >= 1);
    }
    assert.deepEqual(
      report.endpoints.map((e) => [e.role, e.state, e.subscribed]),
      [
        ['recv', 'connected', undefined],
        ['send', 'connected', true],
      ],
    );
    assert.ok(report.master[0]!.rss > 0);
  });

  test('--watch redraws: --count=3 prints three frames, then exits 0', async () => {
    const r = await runCli(['status', '--watch', '--count=3', `--app-path=${dir}`]);
    assert.equal(r.code, 0, r.stderr);
    const frames = r.stdout.split(/^wsgid status {2}/m).slice(1);
    assert.equal(frames.length, 3, r.stdout);
    for (const f of frames) assert.match(f, /Status: Running\n/);
    // Not a terminal: no screen clearing codes.
    assert.doesNotMatch(r.stdout, /\x1b\[/);
  });

  test('--watch on a terminal clears the screen and redraws (a pty from util-linux `script`)', async () => {
    const command = [process.execPath, WSGID_CLI, 'status', '--watch', '--count=2', `--app-path=${dir}`].map((a) => `'${a}'`).join(' ');
    const r = await new Promise<{ code: number; stdout: string }>((resolve) => {
      execFile('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', timeout: 60_000 }, (error, stdout) =>
        resolve({ code: error ? Number(error.code ?? -1) : 0, stdout }),
      );
    });
    assert.equal(r.code, 0, r.stdout);
    const frames = r.stdout.split('\x1b[H\x1b[2J').slice(1);
    assert.equal(frames.length, 2, JSON.stringify(r.stdout));
    for (const f of frames) assert.match(f, /^wsgid status {2}\S+ {2}\(Ctrl-C to quit\)\r?\nStatus: Running\r?\n/);
  });
});

describe('--metrics addresses', () => {
  test('a non-loopback address is refused without --metrics-expose; a busy port stops the start with the reason', async () => {
    const { parent, args } = await cliAppFolder('wsgid-metrics-');
    try {
      const refused = await runCli([...args, '--metrics=0.0.0.0:9150']);
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /--metrics=0\.0\.0\.0:9150 is not a loopback address: the metrics have no authentication; .*--metrics-expose/);
      const bad = await runCli([...args, '--metrics=127.0.0.1:http']);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /expected PORT, HOST:PORT or \[IPv6\]:PORT/);
      const busy = createServer();
      await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
      const port = (busy.address() as AddressInfo).port;
      try {
        for (const workers of ['--workers=1', '--workers=0']) {
          const r = await runCli([...args, workers, `--metrics=127.0.0.1:${port}`]);
          assert.equal(r.code, 1, r.stderr);
          assert.match(r.stderr, new RegExp(`wsgid could not start: .*could not serve the metrics on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
        }
      } finally {
        busy.close();
      }
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });
});

describe('mongrel2 endpoints', () => {
  for (const workers of [1, 0]) {
    test(`--workers=${workers}: --recv and --send swapped are diagnosed on the terminal of \`wsgid start\` and in the log`, async () => {
      const m2 = await startMongrel2({ handlers: [{ name: 'app', route: '/', protocol: 'tnetstring' }] });
      const { dir, parent } = await cliAppFolder('wsgid-endpoints-');
      const h = m2.handler('app');
      try {
        const start = await runCli([`--app-path=${dir}`, `--recv=${h.send}`, `--send=${h.recv}`, `--workers=${workers}`]);
        assert.equal(start.code, 0, start.stderr);
        assert.match(start.stdout, /^wsgid started: master pid \d+/m);
        assert.match(
          start.stderr,
          new RegExp(`^wsgid: warning: --recv and --send look swapped: .*; try --recv=${h.recv} --send=${h.send}$`, 'm'),
        );
        // ZeroMQ reports the refusal either way, depending on who notices first: both name the cause.
        assert.match(
          start.stderr,
          new RegExp(`^wsgid: warning: --recv ${h.send}: (the peer closed the connection during the ZeroMQ handshake|ZeroMQ handshake failed \\([^)]*\\)): it is not a handler's send_spec \\(PUSH\\)`, 'm'),
        );
        const log = readFileSync(path.join(dir, 'logs', 'wsgid.log'), 'utf8');
        assert.match(log, /ERROR .*mongrel2 endpoint refused our PULL socket/);
        assert.match(log, /ERROR .*mongrel2 endpoint refused our PUB socket/);
        assert.match(log, /--recv and --send look swapped/);
        // status.json is rewritten every second: wait for a tick after the refusal.
        await waitFor('status shows the refusal', async () => readStatusFile(dir)?.endpoints?.every((e) => e.state === 'refused'));
        const status = await runCli(['status', `--app-path=${dir}`]);
        assert.match(status.stdout, /^ {2}--recv\[0\] +tcp:\S+ +refused \S+: (the peer closed|ZeroMQ handshake failed)/m);
      } finally {
        await runCli(['stop', `--app-path=${dir}`]);
        await m2.stop();
        rmSync(parent, { recursive: true, force: true });
      }
    });
  }

  test('endpoints nobody listens on: `wsgid start` warns once the grace period is over', async () => {
    const { dir, parent, args } = await cliAppFolder('wsgid-endpoints-');
    try {
      const start = await runCli(args);
      assert.equal(start.code, 0, start.stderr);
      assert.match(start.stderr, new RegExp(`^wsgid: warning: --recv ipc://${parent}/recv: nobody accepts connections there`, 'm'));
      assert.match(start.stderr, new RegExp(`^wsgid: warning: --send ipc://${parent}/send: nobody accepts connections there`, 'm'));
      const log = readFileSync(path.join(dir, 'logs', 'wsgid.log'), 'utf8');
      assert.match(log, /WARN .*mongrel2 endpoint not connected after 3 s/);
      const json = JSON.parse((await runCli(['status', '--json', `--app-path=${dir}`])).stdout) as { endpoints: Array<{ state: string }> };
      assert.deepEqual(
        json.endpoints.map((e) => e.state),
        ['connecting', 'connecting'],
      );
    } finally {
      await runCli(['stop', `--app-path=${dir}`]);
      rmSync(parent, { recursive: true, force: true });
    }
  });

  test('a lost connection is logged and shown; reconnecting is logged', async () => {
    const m2 = await startMongrel2({ handlers: [{ name: 'app', route: '/', protocol: 'tnetstring' }] });
    const h = m2.handler('app');
    const dir = appFolder({ 'server.mjs': 'server.mjs' });
    const wsgid = await startWsgid(wsgidArgs(h, dir, ['--workers=1']), { cwd: dir, readyUrl: `${m2.baseUrl}/` });
    const push = new Push();
    const sub = new Subscriber();
    try {
      await waitFor('both endpoints connected', async () => readStatusFile(dir)?.endpoints?.every((e) => e.state === 'connected' && e.subscribed !== false));
      await m2.stop();
      await wsgid.waitForOutput(/mongrel2 endpoint disconnected[^\n]*role=--recv/, 30_000);
      await wsgid.waitForOutput(/mongrel2 endpoint disconnected[^\n]*role=--send/, 30_000);
      await waitFor('status shows the endpoints disconnected', async () =>
        readStatusFile(dir)?.endpoints?.every((e) => e.state === 'disconnected' && e.disconnects === 1),
      );
      // mongrel2's side again, on the same ports: ZeroMQ reconnects on its own.
      await push.bind(h.recv);
      await sub.bind(h.send);
      sub.subscribe();
      await wsgid.waitForOutput(/mongrel2 endpoint reconnected[^\n]*role=--recv/, 30_000);
      await wsgid.waitForOutput(/mongrel2 endpoint reconnected[^\n]*role=--send/, 30_000);
      const back = await waitFor('status shows them connected again', async () => {
        const e = readStatusFile(dir)?.endpoints;
        return e?.every((x) => x.state === 'connected' && x.connects === 2 && x.subscribed !== false) && e;
      }, 10_000).catch((err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify(readStatusFile(dir)?.endpoints)}`);
      });
      assert.equal(back.length, 2);
      assert.ok(alive(wsgid.pid));
    } finally {
      push.close();
      sub.close();
      assert.equal(await wsgid.stop(), 0, wsgid.output());
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
