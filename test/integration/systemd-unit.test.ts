/**
 * `wsgid systemd-unit`: the unit it prints passes `systemd-analyze verify` (systemd's own parser:
 * exit 0 and not one warning), and runs what it was given. Without a service manager here, the
 * test runs the unit as systemd would: ExecStart's words (unquoted by systemd's rules, below) in
 * WorkingDirectory with Environment= and a real NOTIFY_SOCKET, ExecReload with $MAINPID, then
 * KillSignal — against a real mongrel2, serving a Python WSGI app named by --wsgi-app (the app that
 * failed under the old unit, which kept only --app-path).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePorts, startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request } from '../helpers/http.js';
import { REPO_ROOT, startWsgid, type WsgidProcess } from '../helpers/wsgid.js';
import { alive, runCli, waitFor, workerPids } from '../helpers/processes.js';
import { NotifyListener } from '../helpers/notify-listener.js';
import { systemdWords } from '../helpers/systemd-words.js';

const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';
const skip = existsSync(SYSTEMD_ANALYZE) ? false : 'systemd-analyze not installed';

/** `systemd-analyze verify FILE` (units it names are looked up beside it): exit code and everything it printed. */
function verify(unitText: string, dir: string, name = 'wsgid-test.service'): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const file = path.join(dir, name);
    writeFile(file, unitText).then(() => {
      execFile(SYSTEMD_ANALYZE, ['verify', file], { encoding: 'utf8', timeout: 60_000 }, (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, output: stdout + stderr });
      });
    }, reject);
  });
}

/** The values of `key=` lines in a unit (all of them, in order). */
function values(unit: string, key: string): string[] {
  return unit.split('\n').filter((l) => l.startsWith(key + '=')).map((l) => l.slice(key.length + 1));
}

const WSGI_APP = `import os

def app(environ, start_response):
    body = os.environ['GREETING'].encode()
    start_response('200 OK', [('Content-Type', 'text/plain; charset=utf-8'), ('Content-Length', str(len(body)))])
    return [body]
`;

describe('wsgid systemd-unit', { skip }, () => {
  let m2: Mongrel2Handle;
  let parent: string;
  before(async () => {
    m2 = await startMongrel2();
    parent = await mkdtemp(path.join(os.tmpdir(), 'wsgid-unit-'));
  });
  after(async () => {
    await m2?.stop();
    await rm(parent, { recursive: true, force: true });
  });

  /** A `wsgid init`ed folder `parent/<name>` with app/hello.py. */
  async function pythonApp(name: string): Promise<string> {
    const dir = path.join(parent, name);
    const init = await runCli(['init', `--app-path=${dir}`]);
    assert.equal(init.code, 0, init.stderr);
    await writeFile(path.join(dir, 'app', 'hello.py'), WSGI_APP);
    return dir;
  }

  test('runs exactly the configuration it was given: --wsgi-app, --workers, --env, a variable; reload; stop', async () => {
    // Quotes, $, %, backslash and spaces must all reach the app unchanged.
    const greeting = `hi "there" $HOME 100% \\o/ 'x'`;
    const dir = await pythonApp('site one %d');
    const h = m2.handler('app');
    const args = ['systemd-unit', `--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`, '--workers=2', '--wsgi-app=hello:app', `--env=GREETING=${greeting}`, '--after=mongrel2-test.service'];
    const r = await runCli(args, 60_000, { env: { ...process.env, WSGID_KEEPALIVE_MS: '12345' } });
    assert.equal(r.code, 0, r.stderr);
    const unit = r.stdout;
    assert.deepEqual(await verify(unit, parent), { code: 0, output: '' });
    assert.deepEqual(values(unit, 'Type'), ['notify']);
    assert.deepEqual(values(unit, 'After'), ['network.target mongrel2-test.service']);
    assert.ok(!unit.includes('mongrel2.service'), 'no dependency on a unit Debian does not ship');
    assert.deepEqual(values(unit, 'ExecReload'), ['/bin/kill -HUP $MAINPID']);

    const [execStart] = values(unit, 'ExecStart');
    const argv = systemdWords(execStart!);
    assert.equal(argv[0], process.execPath);
    assert.equal(argv[1], path.join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'));
    assert.deepEqual(argv.slice(2), ['--no-daemon', `--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`, '--wsgi-app=hello:app', '--workers=2', `--env=GREETING=${greeting}`]);
    const [workingDirectory] = values(unit, 'WorkingDirectory');
    assert.equal(workingDirectory!.replace(/%%/g, '%'), dir);
    const environment = Object.fromEntries(values(unit, 'Environment').map((v) => systemdWords(v)[0]!.split(/=(.*)/s).slice(0, 2)));
    assert.deepEqual(environment, { WSGID_KEEPALIVE_MS: '12345' });

    // Run it as systemd would.
    const listener = await NotifyListener.start(path.join(parent, 'notify.sock'), parent);
    const service = spawn(argv[0]!, argv.slice(1), {
      cwd: workingDirectory!.replace(/%%/g, '%'),
      env: { PATH: process.env.PATH, ...environment, NOTIFY_SOCKET: listener.socket },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    service.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    service.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => service.once('exit', (code) => resolve(code)));
    try {
      const ready = await listener.next('READY', 0, '1');
      assert.equal(ready.datagram.fields.get('STATUS'), '2 workers serving', output);
      const res = await request(`${m2.baseUrl}/`);
      assert.equal(res.status, 200, output);
      assert.equal(res.body.toString('utf8'), greeting);
      const before = await workerPids(dir);

      const reload = systemdWords(values(unit, 'ExecReload')[0]!.replace('$MAINPID', String(service.pid)));
      assert.equal(spawnSync(reload[0]!, reload.slice(1)).status, 0);
      const reloading = await listener.next('RELOADING', ready.index + 1, '1');
      await listener.next('READY', reloading.index + 1, '1');
      await waitFor('the old workers to exit', async () => before.every((pid) => !alive(pid)));

      assert.deepEqual(values(unit, 'KillSignal'), ['SIGTERM']);
      service.kill('SIGTERM');
      await listener.next('STOPPING', reloading.index + 1, '1');
      assert.equal(await exited, 0, output);
    } finally {
      service.kill('SIGKILL');
      listener.stop();
    }
  });

  test('verifies cleanly in every shape: --workers=0 (no ExecReload), odd folder names, no native addon (NotifyAccess=all)', async () => {
    const odd = await pythonApp(`odd "name" $x 50%`);
    const cases: Array<{ args: string[]; env?: NodeJS.ProcessEnv; check: (unit: string) => void }> = [
      { args: [`--app-path=${odd}`], check: (u) => assert.deepEqual(values(u, 'NotifyAccess'), ['main']) },
      { args: [`--app-path=${odd}`, '--workers=0'], check: (u) => assert.deepEqual(values(u, 'ExecReload'), []) },
      {
        args: [`--app-path=${odd}`, '--chroot', '--loader-dir=plugins', '--no-access-log', '--max-requests=100'],
        check: (u) => {
          const argv = systemdWords(values(u, 'ExecStart')[0]!);
          // A relative folder typed here is made absolute: the service runs elsewhere.
          assert.deepEqual(argv.slice(4), ['--max-requests=100', '--no-access-log', '--chroot', `--loader-dir=${path.join(process.cwd(), 'plugins')}`]);
        },
      },
      {
        args: [`--app-path=${odd}`],
        env: { ...process.env, WSGID_NATIVE_ADDON: path.join(parent, 'missing.node') },
        check: (u) => assert.deepEqual(values(u, 'NotifyAccess'), ['all']),
      },
    ];
    for (const c of cases) {
      const r = await runCli(['systemd-unit', ...c.args], 60_000, { env: c.env });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await verify(r.stdout, parent), { code: 0, output: '' }, r.stdout);
      c.check(r.stdout);
    }
  });

  test('bad input: an unknown unit name for --after; an app folder a unit file cannot name', async () => {
    const dir = await pythonApp('bad-after');
    const r = await runCli(['systemd-unit', `--app-path=${dir}`, '--after=mongrel2']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--after: expected a unit name like mongrel2\.service, got 'mongrel2'/);
    assert.equal(r.stdout, '');
    const newline = await pythonApp('two\nlines');
    const n = await runCli(['systemd-unit', `--app-path=${newline}`]);
    assert.equal(n.code, 2);
    assert.match(n.stderr, /the app folder path contains a line break or NUL, which a unit file cannot hold/);
    assert.equal(n.stdout, '');
  });

  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  const NOBODY = 65534;
  test('as root: NoNewPrivileges keeps the privilege drop and --chroot working', { skip: !root && 'needs root' }, async () => {
    const dir = path.join(parent, 'nnp');
    assert.equal((await runCli(['init', `--app-path=${dir}`])).code, 0);
    await writeFile(path.join(dir, 'app', 'server.mjs'), 'export default () => new Response(`uid ${process.getuid()}`);\n');
    const chownTree = (p: string): void => {
      chownSync(p, NOBODY, NOBODY);
      if (statSync(p).isDirectory()) for (const e of readdirSync(p)) chownTree(path.join(p, e));
    };
    chownTree(dir);
    const h = m2.handler('app');
    const r = await runCli(['systemd-unit', `--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`, '--chroot']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(values(r.stdout, 'NoNewPrivileges'), ['yes']);
    const argv = systemdWords(values(r.stdout, 'ExecStart')[0]!);
    // setpriv --no-new-privs: the same prctl(PR_SET_NO_NEW_PRIVS) systemd applies.
    const service = spawn('/usr/bin/setpriv', ['--no-new-privs', ...argv], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let output = '';
    service.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => service.once('exit', (code) => resolve(code)));
    try {
      const res = await waitFor('an answer through mongrel2', async () => {
        const x = await request(`${m2.baseUrl}/`, { timeoutMs: 2000 }).catch(() => undefined);
        return x?.status === 200 ? x : undefined;
      });
      assert.equal(res.body.toString(), `uid ${NOBODY}`, output);
      const [worker] = await workerPids(dir);
      assert.equal(readlinkSync(`/proc/${worker}/root`), dir, 'the worker is chrooted');
      const status = readFileSync(`/proc/${service.pid}/status`, 'utf8');
      assert.match(status, /^NoNewPrivs:\s+1$/m, 'the master ran with no_new_privs');
      service.kill('SIGTERM');
      assert.equal(await exited, 0, output);
    } finally {
      service.kill('SIGKILL');
    }
  });

  test('--mongrel2: a unit for mongrel2 itself, whose commands run by hand serve the app through wsgid', { skip: !root && 'needs root: mongrel2 honours its chroot only as root' }, async () => {
    // As an admin would: the app folder's endpoints and mongrel2's chroot saved, mongrel2.conf from
    // `wsgid mongrel2-config` placed in the chroot, then both units.
    const chroot = path.join(parent, 'm2 chroot');
    await mkdir(chroot);
    const dir = path.join(chroot, 'site');
    assert.equal((await runCli(['init', `--app-path=${dir}`])).code, 0);
    await writeFile(path.join(dir, 'app', 'server.mjs'), 'export default (req) => new Response(`via the mongrel2 unit: ${new URL(req.url).pathname}`);\n');
    const [httpPort, recvPort, sendPort] = await freePorts(3);
    const saved = await runCli(['config', `--app-path=${dir}`, `--recv=tcp://127.0.0.1:${recvPort}`, `--send=tcp://127.0.0.1:${sendPort}`, `--mongrel2-chroot=${chroot}`]);
    assert.equal(saved.code, 0, saved.stderr);
    const conf = await runCli(['mongrel2-config', `--app-path=${dir}`, `--port=${httpPort}`]);
    assert.equal(conf.code, 0, conf.stderr);
    await writeFile(path.join(chroot, 'mongrel2.conf'), conf.stdout);
    const uuid = /uuid="([0-9a-f-]+)"/.exec(conf.stdout)?.[1];
    assert.ok(uuid, conf.stdout);

    const m2unit = await runCli(['systemd-unit', `--app-path=${dir}`, '--mongrel2']);
    assert.equal(m2unit.code, 0, m2unit.stderr);
    assert.equal(m2unit.stderr, '', 'the chroot is saved in wsgid.json: nothing to warn about');
    const m2name = 'wsgid-site-mongrel2.service';
    const wsgidUnit = await runCli(['systemd-unit', `--app-path=${dir}`, `--after=${m2name}`]);
    assert.equal(wsgidUnit.code, 0, wsgidUnit.stderr);
    const units = await mkdtemp(path.join(parent, 'units-'));
    assert.deepEqual(await verify(m2unit.stdout, units, m2name), { code: 0, output: '' }, m2unit.stdout);
    assert.deepEqual(await verify(wsgidUnit.stdout, units, 'wsgid-site.service'), { code: 0, output: '' }, wsgidUnit.stdout);
    assert.deepEqual(values(wsgidUnit.stdout, 'After'), [`network.target ${m2name}`]);
    assert.deepEqual(values(wsgidUnit.stdout, 'Wants'), [m2name]);
    assert.deepEqual(values(m2unit.stdout, 'Restart'), ['on-failure']);

    const [workingDirectory] = values(m2unit.stdout, 'WorkingDirectory');
    assert.equal(workingDirectory!.replace(/%%/g, '%'), chroot);
    const pre = values(m2unit.stdout, 'ExecStartPre').map(systemdWords);
    assert.deepEqual(pre.at(-1), ['/usr/bin/m2sh', 'load', '-config', 'mongrel2.conf', '-db', 'config.sqlite']);
    const start = systemdWords(values(m2unit.stdout, 'ExecStart')[0]!);
    assert.deepEqual(start, ['/usr/bin/mongrel2', 'config.sqlite', uuid], 'the uuid mongrel2-config wrote');

    for (const argv of pre) {
      const r = spawnSync(argv[0]!, argv.slice(1), { cwd: chroot, encoding: 'utf8' });
      assert.equal(r.status, 0, `${argv.join(' ')}: ${r.stdout}${r.stderr}`);
    }
    const mongrel2 = spawn(start[0]!, start.slice(1), { cwd: chroot, stdio: ['ignore', 'pipe', 'pipe'] });
    let m2output = '';
    mongrel2.stdout!.on('data', (d: Buffer) => (m2output += d.toString()));
    mongrel2.stderr!.on('data', (d: Buffer) => (m2output += d.toString()));
    const m2exited = new Promise<void>((resolve) => mongrel2.once('exit', () => resolve()));
    let wsgid: WsgidProcess | undefined;
    try {
      const baseUrl = `http://127.0.0.1:${httpPort}`;
      wsgid = await startWsgid(['--no-daemon', `--app-path=${dir}`], { readyUrl: `${baseUrl}/probe`, readyTimeoutMs: 30_000 });
      const res = await request(`${baseUrl}/hello`);
      assert.equal(res.status, 200, res.body.toString() + m2output);
      assert.equal(res.body.toString(), 'via the mongrel2 unit: /hello');
      assert.ok(res.headers['x-wsgid'], 'answered by wsgid through that mongrel2');
    } finally {
      await wsgid?.stop();
      mongrel2.kill('SIGTERM');
      await Promise.race([m2exited, new Promise((r) => setTimeout(r, 5000))]);
      mongrel2.kill('SIGKILL');
    }
  });
});
