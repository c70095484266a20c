/**
 * Logging end to end, against a real mongrel2 and real daemons:
 * - app output captured: a Node app (console.log, console.error, pino) and a Python app (print,
 *   stderr) → logs/app.log, one line per line, tagged with the worker and the stream;
 * - rotation under load in both logrotate styles (rename + `wsgid reopen-logs`, copytruncate),
 *   counting every line across the old and the new file; the master's fd 1/2 follow (dup2) and a
 *   worker spawned after the rotation writes to the new file;
 * - --log-format=json: every line of wsgid.log, access.log and app.log parses, with pino's core
 *   fields, and the access lines match the requests sent;
 * - a failed start shows the cause on the terminal: Python's own traceback (the oracle is
 *   `python3 -c 'import app'`) with a --python hint, a JavaScript error located as `node` does.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, ftruncateSync, mkdtempSync, openSync, closeSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request } from '../helpers/http.js';
import { REPO_ROOT } from '../helpers/wsgid.js';
import { listedPids, runCli, waitFor, alive, block, stopApp } from '../helpers/processes.js';

const folders: string[] = [];
let m2: Mongrel2Handle;

async function appFolder(files: Record<string, string>): Promise<string> {
  const parent = mkdtempSync(path.join(os.tmpdir(), 'wsgid-logging-'));
  folders.push(parent);
  const dir = path.join(parent, 'site');
  const init = await runCli(['init', `--app-path=${dir}`]);
  assert.equal(init.code, 0, init.stderr);
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, 'app', name), text);
  return dir;
}

function read(dir: string, name: string): string {
  try {
    return readFileSync(path.join(dir, 'logs', name), 'utf8');
  } catch {
    return '';
  }
}

async function start(dir: string, ...extra: string[]): Promise<number> {
  return startWith(undefined, dir, ...extra);
}

async function startWith(env: NodeJS.ProcessEnv | undefined, dir: string, ...extra: string[]): Promise<number> {
  const h = m2.handler('app');
  const r = await runCli([`--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`, ...extra], 60_000, { env });
  assert.equal(r.code, 0, r.stderr + read(dir, 'wsgid.log'));
  return Number(/master pid (\d+)/.exec(r.stdout)![1]);
}

const stop = stopApp;

before(async () => {
  m2 = await startMongrel2();
});

after(async () => {
  for (const parent of folders) {
    const site = path.join(parent, 'site');
    for (const pid of [...listedPids(site, 'master'), ...listedPids(site, 'worker')]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  await m2?.stop();
  for (const parent of folders) rmSync(parent, { recursive: true, force: true });
});

/** A Node app that logs each request three ways: console.log, console.error, a pino logger on fd 1. */
const NODE_APP = `
import { createRequire } from 'node:module';
const pino = createRequire(${JSON.stringify(path.join(REPO_ROOT, 'package.json'))})('pino');
const logger = pino();
console.log('booted', process.pid);
process.on('exit', () => console.log('bye', process.pid));
export default {
  fetch(req) {
    const n = new URL(req.url).searchParams.get('n');
    console.log('out ' + n);
    console.error('err ' + n);
    logger.info({ n }, 'pino line');
    return new Response('ok ' + n);
  },
};
`;

/** `[worker <id> <pid> <stream>] <text>` lines of app.log (text format). */
function tagged(text: string): { worker: number; pid: number; stream: string; line: string }[] {
  const out = [];
  for (const raw of text.split('\n')) {
    const m = /^\d{4}-\d\d-\d\dT[\d:.]+Z \[worker (\d+) (\d+) (stdout|stderr)\] (.*)$/.exec(raw);
    if (m) out.push({ worker: Number(m[1]), pid: Number(m[2]), stream: m[3]!, line: m[4]! });
  }
  return out;
}

describe('app output capture (daemon)', () => {
  test('a Node app: console.log, console.error and pino lines land in logs/app.log, tagged by worker and stream', async () => {
    const dir = await appFolder({ 'server.mjs': NODE_APP });
    await start(dir, '--workers=2');
    const workers = listedPids(dir, 'worker');
    assert.equal(workers.length, 2);
    const N = 30;
    for (let n = 0; n < N; n++) assert.equal((await request(`${m2.baseUrl}/?n=${n}`)).body.toString(), `ok ${n}`);
    await waitFor('every request line in app.log', async () => tagged(read(dir, 'app.log')).filter((l) => l.line.startsWith('err ')).length >= N);
    const lines = tagged(read(dir, 'app.log'));
    for (const l of lines) assert.ok(workers.includes(l.pid), `tagged with a worker pid: ${JSON.stringify(l)}`);
    // Each worker's boot line, with its own pid in the text.
    for (const pid of workers) assert.ok(lines.some((l) => l.stream === 'stdout' && l.line === `booted ${pid}` && l.pid === pid));
    for (let n = 0; n < N; n++) {
      const out = lines.filter((l) => l.line === `out ${n}`);
      const err = lines.filter((l) => l.line === `err ${n}`);
      assert.equal(out.length, 1, `out ${n}`);
      assert.equal(out[0]!.stream, 'stdout');
      assert.equal(err.length, 1, `err ${n}`);
      assert.equal(err[0]!.stream, 'stderr');
      assert.equal(err[0]!.pid, out[0]!.pid, 'both lines of one request come from the worker that served it');
      const pinoLine = lines.find((l) => l.stream === 'stdout' && l.line.startsWith('{') && (JSON.parse(l.line) as { n?: string }).n === String(n));
      assert.ok(pinoLine, `pino line ${n}`);
      const parsed = JSON.parse(pinoLine.line) as { msg: string; pid: number; level: number };
      assert.equal(parsed.msg, 'pino line');
      assert.equal(parsed.pid, pinoLine.pid);
      assert.equal(parsed.level, 30);
    }
    assert.doesNotMatch(read(dir, 'wsgid.log'), /out \d+/, "app output is not mixed into wsgid's log");
    await stop(dir);
    // A worker's last words, printed as it exits, are read out before the master closes the file.
    const last = tagged(read(dir, 'app.log'));
    for (const pid of workers) assert.ok(last.some((l) => l.line === `bye ${pid}` && l.pid === pid), `bye ${pid}`);
  });

  test('a Python app: print() and stderr lines land in logs/app.log, tagged by worker', async () => {
    const dir = await appFolder({
      'app.py': [
        'import sys',
        'print("imported", flush=True)',
        'def application(environ, start_response):',
        '    n = environ.get("QUERY_STRING", "")',
        '    print("hello from python", n)',
        '    sys.stderr.write("python stderr %s\\n" % n)',
        '    start_response("200 OK", [("Content-Type", "text/plain")])',
        '    return [b"py " + n.encode()]',
        '',
      ].join('\n'),
    });
    await start(dir, '--workers=1');
    const [worker] = listedPids(dir, 'worker');
    for (let n = 0; n < 5; n++) assert.equal((await request(`${m2.baseUrl}/?${n}`)).body.toString(), `py ${n}`);
    await waitFor('python lines', async () => tagged(read(dir, 'app.log')).filter((l) => l.line.startsWith('python stderr')).length >= 5);
    const lines = tagged(read(dir, 'app.log'));
    assert.ok(lines.some((l) => l.line === 'imported' && l.stream === 'stdout' && l.pid === worker));
    for (let n = 0; n < 5; n++) {
      assert.ok(lines.some((l) => l.line === `hello from python ${n}` && l.stream === 'stdout' && l.pid === worker && l.worker === 1), `print ${n}`);
      assert.ok(lines.some((l) => l.line === `python stderr ${n}` && l.stream === 'stderr' && l.pid === worker), `stderr ${n}`);
    }
    await stop(dir);
  });
});

/** Requests from `clients` concurrent loops until `until()` says stop; resolves with the n's answered. */
function load(clients: number, isDone: () => boolean): Promise<number[]> {
  const answered: number[] = [];
  let next = 0;
  const loop = async (): Promise<void> => {
    while (!isDone()) {
      const n = next++;
      const r = await request(`${m2.baseUrl}/?n=${n}`);
      assert.equal(r.body.toString(), `ok ${n}`);
      answered.push(n);
    }
  };
  return Promise.all(Array.from({ length: clients }, loop)).then(() => answered);
}

function countLines(text: string, re: RegExp): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = re.exec(line);
    if (m) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
  }
  return counts;
}

/** Every answered request has exactly one app line and one access line across old+new files. */
function assertNoLineLost(dir: string, answered: number[], oldSuffix: string): void {
  const both = (name: string): string => read(dir, `${name}${oldSuffix}`) + read(dir, name);
  for (const name of ['app.log', 'access.log', 'wsgid.log']) {
    assert.doesNotMatch(both(name), /\0/, `${name}: no hole (NUL bytes) after the rotation`);
  }
  const app = countLines(both('app.log'), /\[worker \d+ \d+ stdout\] out (\d+)$/);
  const access = countLines(both('access.log'), /"GET \/\?n=(\d+) HTTP\/1\.1" 200 /);
  for (const n of answered) {
    assert.equal(app.get(String(n)), 1, `app line of request ${n}`);
    assert.equal(access.get(String(n)), 1, `access line of request ${n}`);
  }
  assert.equal(app.size, answered.length);
  assert.equal(access.size, answered.length);
}

describe('log rotation under load', () => {
  test('create + postrotate `wsgid reopen-logs`: no line lost, master fd 1/2 and new workers follow', async () => {
    const dir = await appFolder({ 'server.mjs': NODE_APP });
    const master = await start(dir, '--workers=2');
    let done = false;
    const running = load(4, () => done);
    await waitFor('load flowing', async () => (read(dir, 'access.log').match(/\n/g)?.length ?? 0) >= 50);
    // logrotate's `create`: rename every file, then the postrotate command.
    for (const name of ['app.log', 'access.log', 'wsgid.log']) renameSync(path.join(dir, 'logs', name), path.join(dir, 'logs', `${name}.1`));
    const reopen = await runCli(['reopen-logs', `--app-path=${dir}`]);
    assert.equal(reopen.code, 0, reopen.stderr);
    await waitFor('new files written', async () => (read(dir, 'access.log').match(/\n/g)?.length ?? 0) >= 50 && /out \d+/.test(read(dir, 'app.log')));
    // The master's own stdout/stderr follow (dup2), so an uncaught error's stack lands in the new log.
    const current = path.join(dir, 'logs', 'wsgid.log');
    await waitFor('master fd 2 on the new wsgid.log', async () => readlinkSync(`/proc/${master}/fd/2`) === current);
    assert.equal(readlinkSync(`/proc/${master}/fd/1`), current);
    // A worker spawned after the rotation writes to the new app.log.
    const before = listedPids(dir, 'worker');
    process.kill(master, 'SIGTTIN');
    const spawned = await waitFor('a third worker', async () => listedPids(dir, 'worker').find((p) => !before.includes(p) && alive(p)));
    await waitFor('its boot line in the new app.log', async () => read(dir, 'app.log').includes(`] booted ${spawned}`));
    done = true;
    const answered = await running;
    await stop(dir);
    assertNoLineLost(dir, answered, '.1');
    assert.match(read(dir, 'wsgid.log'), /USR1: logs reopened/);
  });

  test('without the native addon (no dup2): everything else is reopened, the master says its fd 1/2 could not follow', async () => {
    const dir = await appFolder({ 'server.mjs': NODE_APP });
    const master = await startWith({ ...process.env, WSGID_NATIVE_ADDON: path.join(dir, 'no-such-addon.node') }, dir, '--workers=1');
    for (const name of ['app.log', 'access.log', 'wsgid.log']) renameSync(path.join(dir, 'logs', name), path.join(dir, 'logs', `${name}.1`));
    assert.equal((await runCli(['reopen-logs', `--app-path=${dir}`])).code, 0);
    await waitFor('the reopen', async () => /USR1: logs reopened/.test(read(dir, 'wsgid.log')));
    assert.match(read(dir, 'wsgid.log'), /WARN .*native addon \(dup2\) is not built: the master's stdout\/stderr still point at the rotated file/);
    assert.equal(readlinkSync(`/proc/${master}/fd/2`), path.join(dir, 'logs', 'wsgid.log.1'));
    assert.equal((await request(`${m2.baseUrl}/?n=1`)).body.toString(), 'ok 1');
    await waitFor('app and access lines in the new files', async () => /out 1$/m.test(read(dir, 'app.log')) && /GET \/\?n=1 /.test(read(dir, 'access.log')));
    await stop(dir);
  });

  test('copytruncate: the files are O_APPEND, so truncation leaves no hole and no line is lost', async () => {
    const dir = await appFolder({ 'server.mjs': NODE_APP });
    const master = await start(dir, '--workers=2');
    let done = false;
    const running = load(4, () => done);
    await waitFor('load flowing', async () => (read(dir, 'access.log').match(/\n/g)?.length ?? 0) >= 50);
    // logrotate's copytruncate: copy each file, then truncate it in place (no signal). What is
    // written between the copy and the truncation is lost: logrotate's own window (its manual says
    // so), not wsgid's. The writers (the master: app.log, wsgid.log; the workers: access.log) are
    // frozen for the copy → truncate, so that window is empty whatever the machine's load, and
    // every line must be found in the old or the new file.
    const writers = [master, ...listedPids(dir, 'worker')];
    for (const pid of writers) process.kill(pid, 'SIGSTOP');
    try {
      for (const name of ['app.log', 'access.log', 'wsgid.log']) {
        const file = path.join(dir, 'logs', name);
        copyFileSync(file, `${file}.1`);
        const fd = openSync(file, 'r+');
        ftruncateSync(fd, 0);
        closeSync(fd);
      }
    } finally {
      for (const pid of writers) process.kill(pid, 'SIGCONT');
    }
    await waitFor('writes after the truncation', async () => (read(dir, 'access.log').match(/\n/g)?.length ?? 0) >= 50);
    done = true;
    const answered = await running;
    await stop(dir);
    // With O_APPEND every write lands at the new end: no NUL-filled gap up to the old offset
    // (assertNoLineLost checks for NUL bytes).
    assertNoLineLost(dir, answered, '.1');
  });
});

describe('--log-format=json', () => {
  test("wsgid's log, the access log and app output: one pino-compatible object per line", async () => {
    const dir = await appFolder({ 'server.mjs': NODE_APP });
    const master = await start(dir, '--workers=2', '--log-format=json');
    const workers = listedPids(dir, 'worker');
    const sent = Array.from({ length: 12 }, (_, n) => `/?n=${n}&x=${encodeURIComponent('a "quoted" ü')}`);
    for (const url of sent) assert.equal((await request(`${m2.baseUrl}${url}`, { headers: { 'user-agent': 'agent "x"', referer: 'http://ref/' } })).status, 200);
    assert.equal((await request(`${m2.baseUrl}/?n=x`, { method: 'POST', body: 'abc' })).status, 200);
    await waitFor('access lines', async () => read(dir, 'access.log').split('\n').filter(Boolean).length >= sent.length + 1);
    await stop(dir);
    const host = os.hostname();
    const parse = (name: string): Record<string, unknown>[] =>
      read(dir, name)
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => {
          const value = JSON.parse(l) as Record<string, unknown>;
          assert.equal(typeof value.level, 'number', l);
          assert.equal(typeof value.time, 'number', l);
          assert.ok(Math.abs((value.time as number) - Date.now()) < 10 * 60_000, l);
          assert.equal(typeof value.pid, 'number', l);
          assert.equal(value.hostname, host, l);
          assert.equal(typeof value.msg, 'string', l);
          return value;
        });
    const log = parse('wsgid.log');
    assert.ok(log.some((l) => l.msg === 'master started' && l.pid === master && l.role === 'master' && l.level === 30));
    assert.ok(log.some((l) => l.msg === 'ready' && workers.includes(l.pid as number) && /^worker \d$/.test(l.role as string)));
    const access = parse('access.log');
    assert.equal(access.length, sent.length + 1);
    for (const url of sent) {
      const line = access.find((a) => (a.req as { url: string }).url === url);
      assert.ok(line, url);
      assert.deepEqual(line.req, { method: 'GET', url, httpVersion: 'HTTP/1.1', remoteAddress: '127.0.0.1', referer: 'http://ref/', userAgent: 'agent "x"' });
      assert.deepEqual(line.res, { statusCode: 200, bytes: Buffer.byteLength(`ok ${/n=(\d+)/.exec(url)![1]}`) });
      assert.equal(line.msg, 'request completed');
      assert.equal(typeof line.responseTime, 'number');
      assert.ok(workers.includes(line.pid as number));
    }
    assert.ok(access.some((a) => (a.req as { method: string }).method === 'POST'));
    const app = parse('app.log');
    for (let n = 0; n < sent.length; n++) {
      assert.ok(app.some((a) => a.msg === `out ${n}` && a.stream === 'stdout' && a.level === 30 && workers.includes(a.pid as number) && typeof a.worker === 'number'));
      assert.ok(app.some((a) => a.msg === `err ${n}` && a.stream === 'stderr' && a.level === 40));
    }
  });
});


describe('a start that fails says why on the terminal', () => {
  test('Python: the traceback exactly as `python3 -c "import app"` prints it, and a --python hint', async () => {
    const dir = await appFolder({
      'helpers.py': 'import os\n\ndef setup():\n    import nosuchmodule_wsgid_test\n',
      'app.py': 'import helpers\nhelpers.setup()\n\ndef application(environ, start_response):\n    pass\n',
    });
    const h = m2.handler('app');
    const r = await runCli([`--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`, '--workers=1']);
    assert.equal(r.code, 4, 'exit code 4: the app could not be loaded');
    const oracle = spawnSync('python3', ['-c', 'import app'], { cwd: path.join(dir, 'app'), encoding: 'utf8' });
    assert.notEqual(oracle.status, 0);
    // The oracle's first frame is its own `-c` string: the rest must be the same, line for line.
    const expected = oracle.stderr.trimEnd().split('\n').filter((l) => !/^ {2}File "<string>", line 1, in <module>$/.test(l));
    assert.deepEqual(block(r.stderr, /^Traceback \(most recent call last\):$/, /^ModuleNotFoundError: /), expected);
    assert.match(r.stderr, /^wsgid could not start: .*ModuleNotFoundError: No module named 'nosuchmodule_wsgid_test'/m);
    assert.match(r.stderr, /^hint: Python module 'nosuchmodule_wsgid_test' is not installed for python3.*--python=/m);
    // The log has it too, indented under the worker's line.
    assert.match(read(dir, 'wsgid.log'), /\n {6}import nosuchmodule_wsgid_test\n/);
  });

  test('Python ASGI: the same traceback as `python3 -c "import main"` and the same hint', async () => {
    const dir = await appFolder({
      'helpers.py': 'def setup():\n    import nosuchmodule_wsgid_asgi\n',
      'main.py': 'import helpers\nhelpers.setup()\n\nasync def app(scope, receive, send):\n    pass\n',
    });
    const h = m2.handler('app');
    const r = await runCli([`--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`, '--workers=1', '--python=/usr/bin/python3', '--asgi=main:app']);
    assert.equal(r.code, 4, 'exit code 4: the app could not be loaded');
    const oracle = spawnSync('/usr/bin/python3', ['-c', 'import main'], { cwd: path.join(dir, 'app'), encoding: 'utf8' });
    assert.notEqual(oracle.status, 0);
    const expected = oracle.stderr.trimEnd().split('\n').filter((l) => !/^ {2}File "<string>", line 1, in <module>$/.test(l));
    assert.deepEqual(block(r.stderr, /^Traceback \(most recent call last\):$/, /^ModuleNotFoundError: /), expected);
    assert.match(r.stderr, /^wsgid could not start: .*the ASGI app failed to load.*No module named 'nosuchmodule_wsgid_asgi'/m);
    assert.match(r.stderr, /^hint: Python module 'nosuchmodule_wsgid_asgi' is not installed for \/usr\/bin\/python3/m);
  });

  test('Python: a SyntaxError in the app file is shown as Python shows it', async () => {
    const dir = await appFolder({ 'app.py': 'def application(environ, start_response):\n    return [b"x"\n\nx = (1 +\n' });
    const h = m2.handler('app');
    const r = await runCli([`--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`, '--workers=1']);
    assert.equal(r.code, 4);
    const oracle = spawnSync('python3', ['-c', 'import app'], { cwd: path.join(dir, 'app'), encoding: 'utf8' });
    const expected = oracle.stderr.trimEnd().split('\n').filter((l) => !/^ {2}File "<string>", line 1, in <module>$/.test(l));
    assert.deepEqual(block(r.stderr, /^Traceback \(most recent call last\):$/, /^SyntaxError: /), expected);
  });

  for (const [what, lib] of [
    ['a syntax error in an imported ES module', 'export function helper() {\n  const x = ;\n  return "x";\n}\n'],
    ['a throw while the module is imported', 'export const helper = () => "x";\nconst config = undefined;\nif (!config) throw new Error("boom: no config");\n'],
  ] as const) {
    test(`JavaScript, ${what}: file, line, column and the offending line, as \`node\` prints them`, async () => {
      const dir = await appFolder({
        'server.mjs': 'import { helper } from "./lib.mjs";\nexport default { fetch: () => new Response(helper()) };\n',
        'lib.mjs': lib,
      });
      const h = m2.handler('app');
      const r = await runCli([`--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`, '--workers=1']);
      assert.equal(r.code, 4, r.stderr);
      const file = path.join(dir, 'app', 'lib.mjs');
      const oracle = spawnSync(process.execPath, [file], { encoding: 'utf8' });
      // Node's header (location, source line, caret), a blank line, the error: five lines.
      const expected = oracle.stderr.split('\n').slice(0, 5);
      assert.match(expected[0]!, /^file:\/\/.*lib\.mjs:\d+$/);
      assert.deepEqual(block(r.stderr, /^file:\/\//, /^(Syntax)?Error: /), expected);
      const caret = expected[2]!.indexOf('^') + 1;
      const line = /:(\d+)$/.exec(expected[0]!)![1];
      assert.match(r.stderr, new RegExp(`^wsgid could not start: .*\\(at ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:${line}:${caret}\\)`, 'm'));
      assert.ok(existsSync(path.join(dir, 'logs', 'wsgid.log')));
    });
  }

  test('the same report in the foreground (--no-daemon) and with --workers=0', async () => {
    const dir = await appFolder({ 'server.mjs': 'export default {\n  fetch() { return new Response(1 +); },\n};\n' });
    const file = path.join(dir, 'app', 'server.mjs');
    const oracle = spawnSync(process.execPath, [file], { encoding: 'utf8' }).stderr.split('\n').slice(0, 5);
    const h = m2.handler('app');
    const common = [`--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`];
    const foreground = await runCli([...common, '--workers=1', '--no-daemon']);
    assert.equal(foreground.code, 4, foreground.stderr);
    // The log stream (this terminal) has the frame indented under the worker's line, then the summary.
    assert.deepEqual(block(foreground.stderr, /^ {2}file:\/\//, /^ {2}SyntaxError: /), oracle.map((l) => (l === '' ? '' : `  ${l}`)));
    assert.match(foreground.stderr, /\nwsgid could not start: app load error: .*Unexpected token.*\(at .*server\.mjs:2:\d+\)\n$/);
    const standalone = await runCli([...common, '--workers=0']);
    assert.equal(standalone.code, 4, standalone.stderr);
    assert.deepEqual(block(standalone.stderr, /^file:\/\//, /^SyntaxError: /), oracle);
  });
});
