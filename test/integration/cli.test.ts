/**
 * The `wsgid` command end to end: init, config, bad configuration, a real daemon behind a real
 * mongrel2 (start → request → status → restart → stop), an app that fails to load, and (as root)
 * privilege dropping and chroot.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { chownSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request } from '../helpers/http.js';
import { REPO_ROOT, WSGID_CLI } from '../helpers/wsgid.js';
import { listedPids, runCli, waitUntil } from '../helpers/processes.js';

/** The wsgid CLI, run to completion. */
const wsgid = runCli;

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures');
const folders: string[] = [];

function tempFolder(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsgid-cli-'));
  folders.push(dir);
  return dir;
}

/** A fresh app folder with the given fixture app. */
async function appFolder(fixture: string): Promise<string> {
  const dir = path.join(tempFolder(), 'site');
  const init = await wsgid(['init', `--app-path=${dir}`]);
  assert.equal(init.code, 0, init.stderr);
  cpSync(path.join(FIXTURES, fixture, 'app'), path.join(dir, 'app'), { recursive: true });
  return dir;
}

const pids = listedPids;

/** Kill whatever a failed test left running in these folders. */
function killLeftovers(): void {
  for (const dir of folders) {
    for (const site of [dir, path.join(dir, 'site')]) {
      for (const pid of [...pids(site, 'master'), ...pids(site, 'worker')]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
  }
}

after(() => {
  killLeftovers();
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
});

describe('wsgid init', () => {
  test('creates the layout, is idempotent and never touches existing files', async () => {
    const dir = path.join(tempFolder(), 'a', 'b');
    const first = await wsgid(['init', `--app-path=${dir}`]);
    assert.equal(first.code, 0, first.stderr);
    for (const sub of ['app', 'logs', 'plugins', 'pid/master', 'pid/worker']) {
      assert.ok(statSync(path.join(dir, sub)).isDirectory(), sub);
    }
    writeFileSync(path.join(dir, 'app', 'server.mjs'), 'export default () => new Response("mine")\n');
    writeFileSync(path.join(dir, 'logs', 'wsgid.log'), 'old log\n');
    const second = await wsgid(['init', `--app-path=${dir}`]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /already a wsgid app folder/);
    assert.equal(readFileSync(path.join(dir, 'app', 'server.mjs'), 'utf8'), 'export default () => new Response("mine")\n');
    assert.equal(readFileSync(path.join(dir, 'logs', 'wsgid.log'), 'utf8'), 'old log\n');
  });

  test('a file in the way is a clear error', async () => {
    const dir = tempFolder();
    writeFileSync(path.join(dir, 'logs'), '');
    const r = await wsgid(['init', `--app-path=${dir}`]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /logs exists and is not a folder/);
  });
});

describe('wsgid config', () => {
  test('writes the given options with wsgid.json keys, merging with what is there', async () => {
    const dir = await appFolder('cli-app');
    const r1 = await wsgid(['config', `--app-path=${dir}`, '--recv=tcp://127.0.0.1:9997', '--send=tcp://127.0.0.1:9996', '--workers=3', '--env=A=1', '--no-respawn', '--max-requests-jitter=5']);
    assert.equal(r1.code, 0, r1.stderr);
    const r2 = await wsgid(['config', `--app-path=${dir}`, '--workers=2', '--env', 'B=2', '--wsgi-app=server:default']);
    assert.equal(r2.code, 0, r2.stderr);
    const saved: unknown = JSON.parse(readFileSync(path.join(dir, 'wsgid.json'), 'utf8'));
    assert.deepEqual(saved, {
      recv: ['tcp://127.0.0.1:9997'],
      send: ['tcp://127.0.0.1:9996'],
      wsgi_app: 'server:default',
      workers: 2,
      respawn: false,
      max_requests_jitter: 5,
      envs: { A: '1', B: '2' },
    });
  });

  test('the old spellings of --[no-]respawn (--[no-]keep-alive, "keep_alive") still work, each with a one-line warning', async () => {
    const dir = await appFolder('cli-app');
    const flag = await wsgid(['config', `--app-path=${dir}`, '--no-keep-alive']);
    assert.equal(flag.code, 0, flag.stderr);
    assert.equal(flag.stderr, 'wsgid: warning: --no-keep-alive is deprecated: use --no-respawn\n');
    assert.deepEqual(JSON.parse(readFileSync(path.join(dir, 'wsgid.json'), 'utf8')), { respawn: false });
    const file = path.join(dir, 'wsgid.json');
    writeFileSync(file, JSON.stringify({ keep_alive: true }));
    const key = await wsgid(['config', `--app-path=${dir}`, '--workers=2']);
    assert.equal(key.code, 0, key.stderr);
    assert.equal(key.stderr, `wsgid: warning: ${file}: key "keep_alive" is deprecated: use "respawn"\n`);
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { workers: 2, respawn: true }, 'rewritten with the new key');
    writeFileSync(file, JSON.stringify({ keep_alive: true, respawn: false }));
    const both = await wsgid(['config', `--app-path=${dir}`, '--workers=3']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /key "keep_alive": the old name of "respawn", which is given too/);
  });

  test('a bad value is refused before anything is written', async () => {
    const dir = await appFolder('cli-app');
    const r = await wsgid(['config', `--app-path=${dir}`, '--send=localhost:9996']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--send: expected a ZeroMQ endpoint like tcp:\/\/127\.0\.0\.1:9997.*got 'localhost:9996'/);
    assert.equal(existsSync(path.join(dir, 'wsgid.json')), false);
  });
});

describe('refusals', () => {
  test('bad wsgid.json → exit 2 naming the file and the key', async () => {
    const dir = await appFolder('cli-app');
    const file = path.join(dir, 'wsgid.json');
    writeFileSync(file, JSON.stringify({ recv: ['tcp://127.0.0.1:1'], send: ['tcp://127.0.0.1:2'], workers: 'many' }));
    const r = await wsgid([`--app-path=${dir}`]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim(), `wsgid: ${file}: key "workers": expected an integer, got "many"`);
    writeFileSync(file, '{"recv": [');
    const r2 = await wsgid([`--app-path=${dir}`]);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, new RegExp(`${file}: not valid JSON`));
    writeFileSync(file, '{"worker": 2}');
    const r3 = await wsgid([`--app-path=${dir}`]);
    assert.match(r3.stderr, /key "worker": unknown key \(did you mean "workers"\?\)/);
  });

  test('missing app folder / missing app/ → exit 2 with a clear message', async () => {
    const dir = path.join(tempFolder(), 'nowhere');
    const r = await wsgid([`--app-path=${dir}`, '--recv=tcp://127.0.0.1:1', '--send=tcp://127.0.0.1:2']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`app folder ${dir} does not exist \\(create it with: wsgid init --app-path=${dir}\\)`));
    const site = await appFolder('cli-app');
    rmSync(path.join(site, 'app'), { recursive: true });
    const r2 = await wsgid([`--app-path=${site}`, '--recv=tcp://127.0.0.1:1', '--send=tcp://127.0.0.1:2']);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /app is missing: put your application there/);
    const r3 = await wsgid(['status', `--app-path=${dir}`]);
    assert.equal(r3.code, 2);
    assert.match(r3.stderr, /does not exist/);
  });

  test('no endpoints → exit 2 saying how to give them', async () => {
    const dir = await appFolder('cli-app');
    const r = await wsgid([`--app-path=${dir}`]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no mongrel2 endpoints: give --recv=ENDPOINT --send=ENDPOINT/);
  });

  test('--help, --version, unknown command', async () => {
    const help = await wsgid(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: wsgid \[start\] \[options\]/);
    const version = await wsgid(['--version']);
    assert.match(version.stdout, /^wsgid \d+\.\d+\.\d+/);
    const unknown = await wsgid(['frob']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'frob'/);
  });

  test('wsgid help COMMAND; a mistyped flag or command gets a "did you mean"', async () => {
    const viaHelp = await wsgid(['help', 'restart']);
    assert.equal(viaHelp.code, 0, viaHelp.stderr);
    assert.equal(viaHelp.stdout, (await wsgid(['restart', '--help'])).stdout);
    assert.match(viaHelp.stdout, /^Usage: wsgid restart/);
    const flag = await wsgid(['--wrokers=2']);
    assert.equal(flag.code, 2);
    assert.equal(flag.stderr, 'wsgid: unknown option --wrokers (did you mean --workers?) (see wsgid --help)\n');
    const command = await wsgid(['stauts']);
    assert.equal(command.code, 2);
    assert.match(command.stderr, /unknown command 'stauts' \(did you mean 'status'\?\)/);
  });

  test('systemd-unit', async () => {
    const dir = await appFolder('cli-app');
    const r = await wsgid(['systemd-unit', `--app-path=${dir}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`ExecStart=\\S+ \\S+main\\.js --no-daemon --app-path=${dir}\n`));
    assert.match(r.stdout, /ExecReload=\/bin\/kill -HUP \$MAINPID/);
    assert.match(r.stdout, /KillSignal=SIGTERM/);
    assert.match(r.stdout, /Type=notify/);
  });
});

describe('daemon', () => {
  let m2: Mongrel2Handle;
  before(async () => {
    m2 = await startMongrel2();
  });
  after(async () => {
    await m2?.stop();
  });

  test('start detaches and returns once ready; status; restart; stop removes the pid files', async () => {
    const dir = await appFolder('cli-app');
    const h = m2.handler('app');
    const start = await wsgid([`--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`, '--workers=2']);
    assert.equal(start.code, 0, start.stderr + readLog(dir));
    assert.match(start.stdout, /wsgid started: master pid (\d+), 2 worker\(s\) ready/);
    const masterPid = Number(/master pid (\d+)/.exec(start.stdout)![1]);

    // Detached: its own session, not our child.
    const stat = readFileSync(`/proc/${masterPid}/stat`, 'utf8').split(') ')[1].split(' ');
    assert.equal(Number(stat[3]), masterPid, 'the daemon leads its own session (setsid)');
    assert.equal(readlinkSync(`/proc/${masterPid}/cwd`), dir, 'cwd is the app folder');

    const r = await request(`${m2.baseUrl}/`);
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'hi');

    const status = await wsgid(['status', `--app-path=${dir}`]);
    assert.equal(status.code, 0);
    // The first three lines are kept for scripts; the master, endpoint and worker details follow.
    assert.match(status.stdout, new RegExp(`^Status: Running\nMaster pid\\(s\\): ${masterPid}\nWorker pid\\(s\\): \\d+, \\d+\n`));

    const again = await wsgid([`--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already running .*master pid/);

    await waitFor(() => (readStatus(dir)?.requests?.served ?? 0) >= 1, 'status file counts the request');
    const json = await wsgid(['status', '--json', `--app-path=${dir}`]);
    assert.equal(json.code, 0);
    const report = JSON.parse(json.stdout) as StatusJson;
    assert.equal(report.status, 'running');
    assert.equal(report.master[0].pid, masterPid);
    assert.equal(report.workers.filter((w) => w.alive).length, 2);
    assert.equal(typeof report.uptime, 'number');
    assert.equal(report.requests?.served, 1);
    assert.equal(report.requests?.inFlight, 0);
    assert.equal(report.restarts, 0);

    const oldWorkers = pids(dir, 'worker').sort();
    const restart = await wsgid(['restart', `--app-path=${dir}`]);
    assert.equal(restart.code, 0, restart.stderr);
    await waitFor(() => {
      const now = pids(dir, 'worker');
      return now.length === 2 && now.every((p) => !oldWorkers.includes(p));
    }, 'workers replaced by the rolling reload');
    assert.equal((await request(`${m2.baseUrl}/`)).body.toString(), 'hi');

    const stop = await wsgid(['stop', `--app-path=${dir}`]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /stopped/);
    assert.throws(() => process.kill(masterPid, 0), { code: 'ESRCH' });
    assert.deepEqual(pids(dir, 'master'), []);
    assert.deepEqual(pids(dir, 'worker'), []);
    const stopped = await wsgid(['status', `--app-path=${dir}`]);
    assert.equal(stopped.code, 3);
    assert.match(stopped.stdout, /^Status: Stopped/);
    const stopAgain = await wsgid(['stop', `--app-path=${dir}`]);
    assert.equal(stopAgain.code, 0);
    assert.match(stopAgain.stdout, /not running/);
    const restartStopped = await wsgid(['restart', `--app-path=${dir}`]);
    assert.equal(restartStopped.code, 3);
    assert.match(readLog(dir), /ready/);
  });

  test('settings saved with `wsgid config` are used by a plain `wsgid --app-path`', async () => {
    const dir = await appFolder('cli-app');
    const h = m2.handler('app');
    assert.equal((await wsgid(['config', `--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`, '--workers=1'])).code, 0);
    const start = await wsgid([`--app-path=${dir}`]);
    assert.equal(start.code, 0, start.stderr + readLog(dir));
    try {
      assert.equal((await request(`${m2.baseUrl}/`)).body.toString(), 'hi');
      assert.equal(pids(dir, 'worker').length, 1);
    } finally {
      assert.equal((await wsgid(['stop', `--app-path=${dir}`])).code, 0);
    }
  });

  test('an app that throws while loading: start exits non-zero and prints why', async () => {
    const dir = await appFolder('cli-app-broken');
    const h = m2.handler('app');
    const start = await wsgid([`--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`]);
    assert.notEqual(start.code, 0);
    assert.equal(start.code, 4, 'app load error');
    assert.match(start.stderr, /wsgid could not start: .*boom: the database is not configured/);
    assert.match(readLog(dir), /boom: the database is not configured/);
    assert.deepEqual(pids(dir, 'master'), []);
  });

  test('--no-daemon runs in the foreground with --workers=0 and stops on SIGTERM', async () => {
    const dir = await appFolder('cli-app');
    const h = m2.handler('app');
    const child = execFile(process.execPath, [WSGID_CLI, '--no-daemon', '--workers=0', `--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`]);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor(() => /ready/.test(stderr), 'foreground ready line on stderr');
      assert.equal((await request(`${m2.baseUrl}/`)).body.toString(), 'hi');
      assert.deepEqual(pids(dir, 'master'), [child.pid]);
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, stderr);
    assert.deepEqual(pids(dir, 'master'), []);
  });

  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  const addon = existsSync(path.join(REPO_ROOT, 'native', 'build', 'Release', 'wsgid_native.node'));

  test('as root: workers drop to the app folder owner', { skip: !root && 'needs root' }, async () => {
    const dir = await appFolder('cli-app');
    chownTree(path.dirname(dir), NOBODY, NOBODY);
    const h = m2.handler('app');
    const start = await wsgid([`--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`, '--workers=1']);
    assert.equal(start.code, 0, start.stderr + readLog(dir));
    try {
      assert.equal((await request(`${m2.baseUrl}/`)).body.toString(), 'hi');
      const [worker] = pids(dir, 'worker');
      assert.deepEqual(ids(worker), { uid: NOBODY, gid: NOBODY });
      assert.equal(readlinkSync(`/proc/${worker}/root`), '/');
    } finally {
      assert.equal((await wsgid(['stop', `--app-path=${dir}`])).code, 0);
    }
  });

  test('as root: --chroot confines workers to the app folder and drops privileges', { skip: (!root && 'needs root') || (!addon && 'native addon not built (npm run build:native)') }, async () => {
    const dir = await appFolder('cli-app');
    chownTree(path.dirname(dir), NOBODY, NOBODY);
    const h = m2.handler('app');
    const start = await wsgid([`--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`, '--workers=1', '--chroot']);
    assert.equal(start.code, 0, start.stderr + readLog(dir));
    try {
      assert.equal((await request(`${m2.baseUrl}/`)).body.toString(), 'hi');
      const [worker] = pids(dir, 'worker');
      assert.deepEqual(ids(worker), { uid: NOBODY, gid: NOBODY });
      assert.equal(readlinkSync(`/proc/${worker}/root`), dir, 'the worker is chrooted into the app folder');
      assert.equal(readlinkSync(`/proc/${worker}/cwd`), path.join(dir, 'app'), 'and works in app/ (entered after the chroot)');
    } finally {
      assert.equal((await wsgid(['stop', `--app-path=${dir}`])).code, 0);
    }
  });
});

describe('privileges (in isolation)', () => {
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  test('enterAppFolder: chroot + drop, then the app folder is "/"', { skip: !root && 'needs root' }, () => {
    const dir = tempFolder();
    writeFileSync(path.join(dir, 'probe.mjs'), 'export const here = "inside";\n');
    chownTree(dir, NOBODY, NOBODY);
    const privileges = path.join(REPO_ROOT, 'dist', 'src', 'app-folder', 'privileges.js');
    const script = `
      const { enterAppFolder, inAppFolder } = await import(${JSON.stringify(privileges)});
      const settings = { appPath: ${JSON.stringify(dir)}, chroot: true, loaderDir: [${JSON.stringify(dir + '/plugins')}], mongrel2Chroot: '' };
      const inside = enterAppFolder(settings);
      const probe = await import('/probe.mjs');
      console.log(JSON.stringify({ uid: process.getuid(), gid: process.getgid(), groups: process.getgroups(), cwd: process.cwd(),
        appPath: inside.appPath, loaderDir: inside.loaderDir, log: inAppFolder(${JSON.stringify(dir)}, 'logs', 'access.log'), probe: probe.here }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      uid: NOBODY,
      gid: NOBODY,
      groups: [NOBODY],
      cwd: '/',
      appPath: '/',
      loaderDir: ['/plugins'],
      log: '/logs/access.log',
      probe: 'inside',
    });
  });

  test('--chroot as non-root is refused clearly', { skip: !root && 'needs root to switch user' }, () => {
    const dir = tempFolder();
    chownTree(dir, NOBODY, NOBODY);
    const privileges = path.join(REPO_ROOT, 'dist', 'src', 'app-folder', 'privileges.js');
    const script = `
      const { enterAppFolder } = await import(${JSON.stringify(privileges)});
      process.setgid(${NOBODY}); process.setuid(${NOBODY});
      try { enterAppFolder({ appPath: ${JSON.stringify(dir)}, chroot: true, loaderDir: [], mongrel2Chroot: '' }); }
      catch (e) { console.log(e.message); }`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.match(r.stdout, /--chroot needs root/);
  });
});

// ---------------------------------------------------------------------------------------------

/** nobody:nogroup on Debian. */
const NOBODY = 65534;

function chownTree(dir: string, uid: number, gid: number): void {
  chownSync(dir, uid, gid);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) chownTree(p, uid, gid);
    else chownSync(p, uid, gid);
  }
}

function ids(pid: number): { uid: number; gid: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const uid = Number(/^Uid:\s+(\d+)/m.exec(status)![1]);
  const gid = Number(/^Gid:\s+(\d+)/m.exec(status)![1]);
  return { uid, gid };
}

function readLog(dir: string): string {
  try {
    return '\n--- wsgid.log ---\n' + readFileSync(path.join(dir, 'logs', 'wsgid.log'), 'utf8');
  } catch {
    return '';
  }
}

interface StatusJson {
  status: string;
  master: { pid: number; alive: boolean }[];
  workers: { pid: number; alive: boolean }[];
  uptime?: number;
  requests?: { served: number; inFlight: number };
  restarts?: number;
}

function readStatus(dir: string): { requests?: { served?: number } } | undefined {
  try {
    return JSON.parse(readFileSync(path.join(dir, 'pid', 'status.json'), 'utf8')) as { requests?: { served?: number } };
  } catch {
    return undefined;
  }
}

const waitFor = (condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> => waitUntil(condition, what, timeoutMs);
