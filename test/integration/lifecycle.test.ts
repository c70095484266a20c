/**
 * A lifecycle that tells the truth, against real processes: the wsgid CLI as a daemon,
 * a real mongrel2, real HTTP clients. `wsgid restart` reports a broken reload (and the old workers
 * go on serving); HUP re-reads wsgid.json (worker count, envs; an invalid file is refused; an
 * endpoint change is named as needing a full restart); a crash loop is a state with backoff that
 * `status` reports; --max-memory replaces a worker that grew, losing no request. Every wait polls
 * for a condition (bounded only against hangs): nothing depends on timing.
 */
import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request } from '../helpers/http.js';
import { appFolderWith, runCli, waitFor, workerPids, type CliResult } from '../helpers/processes.js';

const APP = `export default { fetch: () => new Response((process.env.GREETING ?? 'hi') + ' ' + process.pid) };\n`;

interface Status {
  status: string;
  workersWanted?: number;
  workers: Array<{ pid: number; alive: boolean }>;
  crashLoop?: { looping: boolean; deaths: number; lastExit: string; nextSpawnIn: number };
  memoryRecycled?: number;
  reload?: { generation: number; outcome: string };
}

function log(dir: string): string {
  try {
    return readFileSync(path.join(dir, 'logs', 'wsgid.log'), 'utf8');
  } catch {
    return '';
  }
}

async function status(dir: string): Promise<{ result: CliResult; report: Status }> {
  const result = await runCli(['status', '--json', `--app-path=${dir}`]);
  return { result, report: JSON.parse(result.stdout) as Status };
}

/** GET / → [body, pid of the worker that answered]. */
async function hello(m2: Mongrel2Handle): Promise<{ status: number; text: string; pid: number }> {
  const r = await request(`${m2.baseUrl}/`);
  const text = r.body.toString();
  return { status: r.status, text, pid: Number(text.split(' ').at(-1)) };
}

describe('lifecycle', { timeout: 600_000 }, () => {
  let m2: Mongrel2Handle;
  const dirs: string[] = [];

  before(async () => {
    m2 = await startMongrel2();
  });
  after(async () => {
    for (const dir of dirs) {
      await runCli(['stop', `--app-path=${dir}`, '--send-signal=INT']);
      rmSync(dir, { recursive: true, force: true });
    }
    await m2?.stop();
  });
  // Each test's wsgid is stopped before the next starts: two on one mongrel2 handler would share its requests.
  afterEach(async () => {
    const dir = dirs.at(-1);
    if (dir) await runCli(['stop', `--app-path=${dir}`, '--send-signal=INT']);
  });

  async function started(source: string, args: string[]): Promise<string> {
    const dir = await appFolderWith(source, 'wsgid-life-');
    dirs.push(dir);
    const h = m2.handler('app');
    const start = await runCli([`--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`, ...args]);
    assert.equal(start.code, 0, start.stdout + start.stderr + log(dir));
    assert.match(start.stdout, /waiting for \d+ worker\(s\) to be ready/);
    return dir;
  }

  test('a broken reload: restart exits non-zero with the load error; the old workers keep answering', async () => {
    const dir = await started(APP, ['--workers=2']);
    const before = await workerPids(dir);
    assert.equal(before.length, 2);
    writeFileSync(path.join(dir, 'app', 'server.mjs'), 'export default { fetch: () => new Response("v2" }; // )\n');
    const restart = await runCli(['restart', `--app-path=${dir}`]);
    assert.equal(restart.code, 4, restart.stdout + restart.stderr);
    assert.match(restart.stdout, /waiting for the new workers to be ready/);
    assert.match(restart.stderr, /reload failed: app load error: .*missing \) after argument list/);
    assert.match(restart.stderr, /the running workers keep serving/);
    // The old workers, untouched, answer (once the second new worker, failing the same way, is gone).
    await waitFor('only the old workers', async () => JSON.stringify(await workerPids(dir)) === JSON.stringify(before) || undefined);
    for (let i = 0; i < 4; i++) {
      const r = await hello(m2);
      assert.equal(r.status, 200);
      assert.ok(before.includes(r.pid), `answered by an old worker: ${r.text}`);
    }
    // Fixed: the next restart succeeds and says so; the new code answers.
    writeFileSync(path.join(dir, 'app', 'server.mjs'), `export default { fetch: () => new Response('v2 ' + process.pid) };\n`);
    const fixed = await runCli(['restart', `--app-path=${dir}`]);
    assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
    assert.match(fixed.stdout, /reloaded: 2 new worker\(s\) ready/);
    assert.match((await hello(m2)).text, /^v2 /);
    // Fire-and-forget still exists.
    const noWait = await runCli(['restart', '--no-wait', `--app-path=${dir}`]);
    assert.equal(noWait.code, 0);
    assert.match(noWait.stdout, /rolling reload requested\n$/);
  });

  test('HUP re-reads wsgid.json: worker count and envs change; invalid file refused; endpoints need a full restart', async () => {
    const dir = await appFolderWith(APP, 'wsgid-life-');
    dirs.push(dir);
    const h = m2.handler('app');
    const config = (values: Record<string, unknown>): void => writeFileSync(path.join(dir, 'wsgid.json'), JSON.stringify(values, null, 2));
    // max_requests in the file is overridden by the command line, at start and on every HUP.
    const base = { recv: [h.recv], send: [h.send], workers: 1, max_requests: 5 };
    config(base);
    const start = await runCli([`--app-path=${dir}`, '--max-requests=1000']);
    assert.equal(start.code, 0, start.stderr + log(dir));
    assert.equal((await workerPids(dir)).length, 1);
    assert.match((await hello(m2)).text, /^hi /);

    config({ ...base, workers: 3, envs: { GREETING: 'hello' } });
    const grown = await runCli(['restart', `--app-path=${dir}`]);
    assert.equal(grown.code, 0, grown.stdout + grown.stderr);
    assert.match(grown.stdout, /applied: .*--workers/);
    assert.match(grown.stdout, /reloaded: 3 new worker\(s\) ready/);
    assert.equal((await status(dir)).report.workersWanted, 3);
    await waitFor('3 workers (the old one drained)', async () => (await workerPids(dir)).length === 3 || undefined);
    assert.match((await hello(m2)).text, /^hello /);
    const maxRequests = JSON.parse(readFileSync(path.join(dir, 'pid', 'status.json'), 'utf8')) as { workers: Array<{ maxRequests: number }> };
    assert.ok(maxRequests.workers.length >= 3, 'status lists the new workers');
    assert.ok(maxRequests.workers.every((w) => w.maxRequests === 1000), 'the command line still wins over wsgid.json');

    // An invalid file: nothing changes, and restart says why.
    const running = await workerPids(dir);
    writeFileSync(path.join(dir, 'wsgid.json'), JSON.stringify({ ...base, workers: 'three' }));
    const invalid = await runCli(['restart', `--app-path=${dir}`]);
    assert.equal(invalid.code, 2, invalid.stdout + invalid.stderr);
    assert.match(invalid.stderr, /reload failed: .*wsgid\.json.*workers.*expected an integer/);
    assert.deepEqual(await workerPids(dir), running);
    assert.match(log(dir), /HUP: the configuration is invalid; keeping the running one/);
    assert.match((await hello(m2)).text, /^hello /);

    // Endpoints cannot move without a full restart: named, and the old ones keep working.
    const other = m2.handler('json');
    config({ ...base, workers: 3, envs: { GREETING: 'hello' }, recv: [other.recv], send: [other.send] });
    const moved = await runCli(['restart', `--app-path=${dir}`]);
    assert.equal(moved.code, 0, moved.stdout + moved.stderr);
    assert.match(moved.stderr, /need a full restart \(wsgid stop, then start\): --recv --send/);
    assert.match(log(dir), /changed settings that need a full restart.*--recv --send/);
    assert.match((await hello(m2)).text, /^hello /);
  });

  test('a crash loop: backoff between respawns, `status` says Crash-looping (exit 1), clients get their 502', async () => {
    // Crashes on its first request: deterministic "shortly after ready".
    const dir = await started(
      `export default { fetch: (req) => { if (new URL(req.url).pathname === '/crash') process.exit(7); return new Response('ok ' + process.pid); } };\n`,
      ['--workers=1', '--crash-window=600', '--crash-loop-after=2', '--crash-backoff-max=600'],
    );
    const healthy = await status(dir);
    assert.equal(healthy.result.code, 0);
    assert.equal(healthy.report.status, 'running');
    for (let i = 1; i <= 2; i++) {
      const r = await request(`${m2.baseUrl}/crash`);
      assert.equal(r.status, 502, `request ${i} answered by the master when its worker died`);
    }
    const { result, report } = await waitFor('the crash loop in the status', async () => {
      const s = await status(dir);
      return s.report.crashLoop?.deaths === 2 ? s : undefined;
    });
    assert.equal(result.code, 1);
    assert.equal(report.status, 'crash-looping');
    assert.equal(report.crashLoop?.looping, true);
    assert.equal(report.crashLoop?.lastExit, 'code 7');
    assert.equal(typeof report.crashLoop?.nextSpawnIn, 'number');
    const text = await runCli(['status', `--app-path=${dir}`]);
    assert.equal(text.code, 1);
    assert.match(text.stdout, /^Status: Crash-looping\n/);
    assert.match(text.stdout, /Crash loop: 2 worker\(s\) in a row died soon after becoming ready \(last: code 7\)/);
    const output = log(dir);
    assert.match(output, /workers are crash-looping/);
    // The backoff doubles: 1 s after the first quick death, 2 s after the second.
    const delays = [...output.matchAll(/next worker spawn delayed.*?"?ms"?[=:] ?(\d+)/g)].map((m) => Number(m[1]));
    assert.deepEqual(delays.slice(0, 2), [1000, 2000], output);
    // It still serves what does not crash it (once the backoff is over).
    assert.match((await request(`${m2.baseUrl}/`)).body.toString(), /^ok /);
    // A reload (the fix deployed) clears the state.
    const restart = await runCli(['restart', `--app-path=${dir}`]);
    assert.equal(restart.code, 0, restart.stdout + restart.stderr);
    const after = await status(dir);
    assert.equal(after.report.status, 'running');
    assert.equal(after.result.code, 0);
  });

  test('--max-memory: a WSGI worker whose Python grew past the limit is replaced; no request lost', async () => {
    const dir = await appFolderWith('', 'wsgid-life-');
    dirs.push(dir);
    rmSync(path.join(dir, 'app', 'server.mjs'));
    // /grow makes the Python process (not Node) hold 320 MB more, written so it is resident.
    writeFileSync(
      path.join(dir, 'app', 'hog.py'),
      [
        'import os',
        'hog = []',
        'def application(environ, start_response):',
        "    if environ['PATH_INFO'] == '/grow':",
        "        hog.append(bytearray(b'x') * (320 << 20))",
        "    body = ('%d %d' % (len(hog), os.getppid())).encode()",
        "    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])",
        '    return [body]',
        '',
      ].join('\n'),
    );
    const h = m2.handler('app');
    const start = await runCli([
      `--app-path=${dir}`,
      `--recv=${h.recv}`,
      `--send=${h.send}`,
      '--workers=1',
      '--python=/usr/bin/python3',
      '--wsgi-app=hog:application',
      '--max-memory=300M',
    ]);
    assert.equal(start.code, 0, start.stdout + start.stderr + log(dir));
    const first = await hello(m2);
    assert.equal(first.status, 200);
    const reported = await waitFor('the worker\'s memory in the status file', async () => {
      const s = JSON.parse(readFileSync(path.join(dir, 'pid', 'status.json'), 'utf8')) as { workers: Array<{ pid: number; rss: number }> };
      return s.workers.find((w) => w.pid === first.pid && w.rss > 0)?.rss;
    });
    assert.ok(reported < 300 * 2 ** 20, `starts under the limit (${reported} bytes)`);

    // Clients keep asking (4 at a time) through the replacement.
    let stop = false;
    const statuses = new Map<number, number>();
    const answeredBy = new Set<number>();
    const client = async (): Promise<void> => {
      while (!stop) {
        // A request may wait in the master while the replacement boots (the grown worker is drained
        // once past its overshoot bound): on a loaded machine that boot can take many seconds.
        const r = await request(`${m2.baseUrl}/`, { timeoutMs: 90_000 });
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status === 200) answeredBy.add(Number(r.body.toString().split(' ')[1]));
      }
    };
    const clients = [client(), client(), client(), client()];
    const grow = await request(`${m2.baseUrl}/grow`);
    assert.equal(grow.status, 200);
    assert.equal(grow.body.toString(), `1 ${first.pid}`);
    await waitFor('the grown worker replaced', async () => {
      const pids = await workerPids(dir);
      return (pids.length === 1 && pids[0] !== first.pid) || undefined;
    }, 120_000);
    const replacement = (await workerPids(dir))[0]!;
    await waitFor('a request answered by the replacement', async () => answeredBy.has(replacement) || undefined);
    stop = true;
    await Promise.all(clients);
    assert.deepEqual([...statuses.keys()], [200], `every request answered 200: ${JSON.stringify([...statuses])}`);
    assert.ok(answeredBy.has(first.pid), 'the grown worker served until it was replaced');
    assert.equal((await status(dir)).report.memoryRecycled, 1);
    assert.match(log(dir), /worker over --max-memory; replacing it .*maxMemory=314572800/);
    // The replacement starts small again.
    assert.equal((await hello(m2)).text, `0 ${replacement}`);
  });
});
