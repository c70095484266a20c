/**
 * A root master must never write through symlinks the app's user plants in the
 * app folder (docs/SECURITY.md). wsgid runs as root in a folder owned by `nobody`; the symlinks are
 * planted *as nobody* (setpriv), pointing at a root-only file; then what makes the master write is
 * triggered (start, USR1, a worker respawn, the status tick) and the file must be unchanged.
 *
 * No mongrel2 is needed: workers get ready without it (ZeroMQ connects lazily to the ipc endpoints).
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../helpers/wsgid.js';
import { cliAppFolder, listedPids, runCli, stopApp, waitUntil as waitFor } from '../helpers/processes.js';

const root = typeof process.getuid === 'function' && process.getuid() === 0;
const setpriv = spawnSync('setpriv', ['--version']).status === 0;
const skip = !root ? 'needs root: the attacks are by an unprivileged app user against a root master' : !setpriv ? 'needs setpriv (util-linux)' : false;
const addon = existsSync(path.join(REPO_ROOT, 'native', 'build', 'Release', 'wsgid_native.node'));

const NOBODY = 65534;
const folders: string[] = [];

/** The wsgid CLI, run to completion. */
const wsgid = runCli;

/** Run a shell command as nobody:nogroup, no supplementary groups. */
function asNobody(script: string): void {
  const r = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'sh', '-c', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, `as nobody: ${script}\n${r.stderr}`);
}

function chownTree(dir: string): void {
  chownSync(dir, NOBODY, NOBODY);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) chownTree(p);
    else chownSync(p, NOBODY, NOBODY);
  }
}

/** A root-only folder with a root-only file `name` in it: what the symlinks point at. */
function rootOnlyTarget(name = 'secret'): { dir: string; file: string; check(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsgid-target-')); // 0700, root's
  folders.push(dir);
  const file = path.join(dir, name);
  writeFileSync(file, 'root only\n', { mode: 0o600 });
  return {
    dir,
    file,
    check() {
      const st = statSync(file);
      assert.equal(readFileSync(file, 'utf8'), 'root only\n', `${file} was written to`);
      assert.deepEqual({ uid: st.uid, gid: st.gid, mode: st.mode & 0o777 }, { uid: 0, gid: 0, mode: 0o600 }, `${file} changed owner or mode`);
      assert.deepEqual(readdirSync(dir), [name], `something was created in ${dir}`);
    },
  };
}

/** An app folder (cli-app fixture) owned by nobody, in a folder nobody owns. */
async function appFolder(): Promise<{ dir: string; args: string[] }> {
  const { parent, dir, args } = await cliAppFolder('wsgid-sec-');
  folders.push(parent);
  chownTree(parent);
  return { dir, args };
}

const pids = listedPids;

function read(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}


/** Start wsgid (as root), run `body`, always stop it. */
async function running(args: string[], dir: string, body: (master: number) => Promise<void>): Promise<void> {
  const start = await wsgid(args);
  assert.equal(start.code, 0, start.stderr + read(path.join(dir, 'logs', 'wsgid.log')));
  const [master] = pids(dir, 'master');
  assert.ok(master !== undefined, 'a master pid file');
  try {
    await body(master);
  } finally {
    await stopApp(dir);
  }
}

/**
 * As nobody, in one process (a shell loop would use up the very pids it plants), plant symlinks to
 * `target` named `pattern` (`{p}` = pid) for the next `count` pids the kernel will hand out.
 */
function plantForNextPids(folder: string, pattern: string, target: string, count = 500): void {
  const script = `
    const fs = require('node:fs');
    const last = Number(fs.readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8'));
    for (let p = last + 1; p <= last + ${count}; p++) {
      fs.symlinkSync(${JSON.stringify(target)}, require('node:path').join(${JSON.stringify(folder)}, ${JSON.stringify(pattern)}.replace('{p}', String(p))));
    }`;
  const r = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

after(() => {
  for (const dir of folders) {
    for (const role of ['master', 'worker'] as const) {
      for (const pid of pids(path.join(dir, 'site'), role)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
  }
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
});

describe('a root master and symlinks planted by the app user', { skip }, () => {
  for (const chroot of [false, true]) {
    const label = chroot ? ' (--chroot)' : '';
    test(`USR1 never reopens logs/wsgid.log through a symlink${label}`, { skip: chroot && !addon && 'native addon not built (npm run build:native)' }, async () => {
      const { dir, args } = await appFolder();
      const target = rootOnlyTarget();
      const logs = path.join(dir, 'logs');
      await running(chroot ? [...args, '--chroot'] : args, dir, async (master) => {
        // What logrotate does, except that the new name is a symlink to a root-only file.
        asNobody(`cd ${logs} && mv wsgid.log wsgid.log.1 && ln -s ${target.file} wsgid.log`);
        process.kill(master, 'SIGUSR1');
        // The master logs its reopen (or its refusal) through whichever fd it then holds.
        await waitFor(
          () => /could not reopen the log|USR1: logs reopened/.test(read(path.join(logs, 'wsgid.log.1'))) || read(target.file) !== 'root only\n',
          'the master to handle USR1',
        );
        target.check();
        assert.match(read(path.join(logs, 'wsgid.log.1')), /could not reopen the log.*symlink/);

        // A real rotation still works afterwards.
        asNobody(`cd ${logs} && rm wsgid.log`);
        process.kill(master, 'SIGUSR1');
        await waitFor(() => /USR1: logs reopened/.test(read(path.join(logs, 'wsgid.log'))), 'the reopened log');
      });
      target.check();
    });
  }

  test('USR1 never reopens logs/app.log (captured app output) through a symlink', async () => {
    const { dir, args } = await appFolder();
    const target = rootOnlyTarget();
    const logs = path.join(dir, 'logs');
    await running(args, dir, async (master) => {
      asNobody(`cd ${logs} && mv app.log app.log.1 && ln -s ${target.file} app.log`);
      process.kill(master, 'SIGUSR1');
      await waitFor(() => /USR1: logs reopened/.test(read(path.join(logs, 'wsgid.log'))), 'the master to handle USR1');
      target.check();
      assert.match(read(path.join(logs, 'wsgid.log')), /could not reopen the log file=app\.log .*symlink/);
    });
    target.check();
  });

  test('start refuses logs/app.log as a symlink', async () => {
    const { dir, args } = await appFolder();
    const target = rootOnlyTarget();
    asNobody(`cd ${dir}/logs && ln -s ${target.file} app.log`);
    const start = await wsgid(args);
    assert.notEqual(start.code, 0, 'start must refuse');
    assert.match(start.stderr, /logs\/app\.log.*symlink/);
    target.check();
    assert.deepEqual(pids(dir, 'master'), []);
  });

  test('USR1 never reopens the log through a logs/ folder swapped for a symlink', async () => {
    const { dir, args } = await appFolder();
    const target = rootOnlyTarget('wsgid.log');
    const logs = path.join(dir, 'logs');
    await running(args, dir, async (master) => {
      asNobody(`cd ${dir} && mv logs logs.old && ln -s ${target.dir} logs`);
      process.kill(master, 'SIGUSR1');
      await waitFor(
        () => /could not reopen the log|USR1: logs reopened/.test(read(path.join(dir, 'logs.old', 'wsgid.log'))) || read(target.file) !== 'root only\n',
        'the master to handle USR1',
      );
      target.check();
      asNobody(`cd ${dir} && rm logs && mv logs.old logs`);
    });
    assert.ok(existsSync(path.join(logs, 'wsgid.log')));
    target.check();
  });

  test('nothing is written through a pid/ folder swapped for a symlink (worker respawn, status tick)', async () => {
    const { dir, args } = await appFolder();
    const target = rootOnlyTarget();
    const log = path.join(dir, 'logs', 'wsgid.log');
    await running(args, dir, async () => {
      const [worker] = pids(dir, 'worker');
      assert.ok(worker !== undefined, 'a worker pid file');
      asNobody(`cd ${dir} && mv pid pid.old && ln -s ${target.dir} pid`);
      try {
        process.kill(worker, 'SIGKILL'); // the respawn writes a worker pid file; every tick writes status.json
        await waitFor(() => /could not write the worker pid file/.test(read(log)) || readdirSync(target.dir).length > 1, 'the respawn');
        target.check();
      } finally {
        asNobody(`cd ${dir} && rm pid && mv pid.old pid`); // so that stop finds the master
      }
    });
    target.check();
  });

  test('start refuses log files that are symlinks instead of chowning or opening their targets', async () => {
    const { dir, args } = await appFolder();
    const target = rootOnlyTarget();
    asNobody(`cd ${dir}/logs && ln -s ${target.file} access.log`);
    const start = await wsgid(args);
    assert.notEqual(start.code, 0, 'start must refuse');
    assert.match(start.stderr, /logs\/access\.log.*symlink/);
    target.check();
    assert.deepEqual(pids(dir, 'master'), []);
  });

  // The writer's temp names are random (crypto.randomBytes): nobody can plant ahead of them. To
  // check what the writer does when a symlink is there all the same (O_EXCL|O_NOFOLLOW: refuse,
  // never write through it), the master runs with a preload that makes those names known.
  const PREDICTABLE = { ...process.env, NODE_OPTIONS: `--import=${path.join(REPO_ROOT, 'test', 'fixtures', 'predictable-temp-names.mjs')}` };
  const TEMP = 'deadbeefdeadbeef';

  test('a worker pid file is never written through a symlink at its temp name (worker respawn)', async () => {
    const { dir, args } = await appFolder();
    const target = rootOnlyTarget();
    const log = path.join(dir, 'logs', 'wsgid.log');
    const start = await runCli(args, 60_000, { env: PREDICTABLE });
    assert.equal(start.code, 0, start.stderr + read(log));
    try {
      const [worker] = pids(dir, 'worker');
      assert.ok(worker !== undefined, 'a worker pid file');
      plantForNextPids(path.join(dir, 'pid', 'worker'), `.{p}.pid.${TEMP}.tmp`, target.file);
      process.kill(worker, 'SIGKILL'); // the master respawns it and writes the new worker's pid file
      // The master tried the planted name and refused it: what proves the test reached the writer.
      await waitFor(() => new RegExp(`could not write the worker pid file.*EEXIST.*\\.\\d+\\.pid\\.${TEMP}\\.tmp`).test(read(log)) || read(target.file) !== 'root only\n', 'the refused pid file');
      target.check();
    } finally {
      await stopApp(dir);
    }
    target.check();
  });

  test('pid/status.json is never written through a symlink at its temp name', async () => {
    const { dir, args } = await appFolder();
    const target = rootOnlyTarget();
    const log = path.join(dir, 'logs', 'wsgid.log');
    asNobody(`ln -s ${target.file} ${dir}/pid/.status.json.${TEMP}.tmp`);
    const start = await runCli([...args, '--debug'], 60_000, { env: PREDICTABLE });
    assert.equal(start.code, 0, start.stderr + read(log));
    try {
      await waitFor(() => new RegExp(`cannot write pid/status\\.json.*EEXIST.*\\.status\\.json\\.${TEMP}\\.tmp`).test(read(log)) || read(target.file) !== 'root only\n', 'the refused status file');
      target.check();
      assert.equal(existsSync(path.join(dir, 'pid', 'status.json')), false, 'a status file written some other way');
    } finally {
      await stopApp(dir);
    }
    target.check();
  });

  test('a root CLI never imports plugins from a folder the app user owns', async () => {
    const { dir } = await appFolder();
    const marker = path.join(dir, 'imported-by');
    // What the user can put there: a command plugin that records who imported it.
    asNobody(`cat > ${dir}/plugins/cmd.mjs <<'EOF'
import { writeFileSync } from 'node:fs';
writeFileSync(${JSON.stringify(marker)}, String(process.getuid()));
export default { command: 'hello', description: 'says hello', run: () => 0 };
EOF`);
    const status = await wsgid(['status', `--app-path=${dir}`]);
    assert.equal(status.code, 3, status.stdout + status.stderr);
    assert.equal(existsSync(marker), false, `imported as uid ${read(marker)}`);
    assert.match(status.stderr, /not loading plugins as root/);
  });

  test('wsgid.json is never read through a symlink (its start would show in the error)', async () => {
    const { dir } = await appFolder();
    const target = rootOnlyTarget();
    asNobody(`ln -s ${target.file} ${dir}/wsgid.json`);
    const config = await wsgid(['config', `--app-path=${dir}`]);
    assert.notEqual(config.code, 0);
    assert.doesNotMatch(config.stdout + config.stderr, /root only/);
    assert.match(config.stderr, /wsgid\.json: cannot read/);
    target.check();
  });
});

/**
 * The app user writes pid/master/, so a pid file may name any process, with the
 * start time anyone can read in /proc. A root `stop`, `restart` or `reopen-logs` must signal it
 * only when the process is a wsgid master of this folder. The victim is a root node process in the
 * app folder (node and a working folder there prove nothing by themselves); the first signal it gets
 * decides how it ended, so "never signalled" is checked without timing: the test kills it with
 * SIGKILL at the end.
 */
describe('a root CLI and pid files forged by the app user', { skip }, () => {
  const forgeries = {
    'with the victim\'s start time': (pid: number) => `printf '%s\\n%s\\n' ${pid} "$(awk '{print $22}' /proc/${pid}/stat)" > ${pid}.pid`,
    'one line, mtime in the future': (pid: number) => `echo ${pid} > ${pid}.pid && touch -d '+1 hour' ${pid}.pid`,
    'one line, written after the victim started': (pid: number) => `echo ${pid} > ${pid}.pid`,
  };
  for (const [label, forge] of Object.entries(forgeries)) {
    for (const command of ['stop', 'restart', 'reopen-logs']) {
      test(`${command} never signals a root process named by a forged pid file (${label})`, async () => {
        const { dir } = await appFolder();
        const victim = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { cwd: dir, stdio: 'ignore' });
        const exited = new Promise<NodeJS.Signals | null>((resolve) => victim.once('exit', (_code, signal) => resolve(signal)));
        try {
          const pid = victim.pid!;
          asNobody(`cd ${dir}/pid/master && ${forge(pid)}`);
          const run = await wsgid([command, `--app-path=${dir}`]);
          assert.equal(run.code, 1, run.stdout + run.stderr);
          assert.match(run.stderr, new RegExp(`not signalling pid ${pid} .*not a wsgid master of ${dir}: its command line is not wsgid's`));
          assert.doesNotMatch(run.stdout, /sent|stopped/);
        } finally {
          victim.kill('SIGKILL');
        }
        assert.equal(await exited, 'SIGKILL', 'the victim was signalled by wsgid');
      });
    }
  }

  test('status never calls a forged pid file running: the folder is stopped, and the file is named', async () => {
    const { dir } = await appFolder();
    const victim = spawn('sleep', ['1000'], { stdio: 'ignore' });
    try {
      asNobody(`cd ${dir}/pid/master && ${forgeries['with the victim\'s start time'](victim.pid!)}`);
      const status = await wsgid(['status', `--app-path=${dir}`]);
      assert.equal(status.code, 3, status.stdout + status.stderr);
      assert.match(status.stdout, /^Status: Stopped$/m);
      assert.match(status.stdout, new RegExp(`${victim.pid}\\.pid names pid ${victim.pid}, which is not a wsgid master of this folder: it runs [^ ]*sleep, not node`));
      const json = await wsgid(['status', '--json', `--app-path=${dir}`]);
      const report = JSON.parse(json.stdout) as { status: string; master: Array<{ pid: number; alive: boolean }> };
      assert.equal(report.status, 'stopped');
      assert.deepEqual(report.master.map((m) => [m.pid, m.alive]), [[victim.pid, false]]);
    } finally {
      victim.kill('SIGKILL');
    }
  });

  test('a real master is still stopped beside a forged pid file, which is reported', async () => {
    const { dir, args } = await appFolder();
    const victim = spawn('sleep', ['1000'], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => victim.once('exit', (_code, signal) => resolve(signal)));
    try {
      const start = await wsgid(args);
      assert.equal(start.code, 0, start.stderr);
      const [master] = pids(dir, 'master');
      asNobody(`cd ${dir}/pid/master && ${forgeries['with the victim\'s start time'](victim.pid!)}`);
      const stop = await wsgid(['stop', `--app-path=${dir}`]);
      assert.equal(stop.code, 1, stop.stdout + stop.stderr);
      assert.match(stop.stdout, new RegExp(`^sent SIGTERM to master pid ${master}; [^]*\\nstopped\\n$`));
      assert.match(stop.stderr, new RegExp(`not signalling pid ${victim.pid}`));
    } finally {
      victim.kill('SIGKILL');
    }
    assert.equal(await exited, 'SIGKILL', 'the victim was signalled by wsgid');
  });
});

/**
 * The app's user can connect to the master's socket (pid/.d<pid>/w is theirs). Connections
 * that never say hello were kept forever (500 took the master from 45 to 546 fds). Now at most 64
 * wait at once, and each is closed after 10 s without hello.
 */
describe("the master's socket and connections that never say hello", { skip }, () => {
  const fds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

  test('500 silent connections from the app user: capped while open, all closed, the master back to its fds', { timeout: 120_000 }, async () => {
    const { dir, args } = await appFolder();
    await running(args, dir, async (master) => {
      const endpoint = path.join(dir, 'pid', `.d${master}`, 'w');
      const baseline = fds(master);
      // As nobody: open 500 connections, say nothing, report when all are open and when the master closed them all.
      const script = `
        const net = require('node:net');
        let open = 0, closed = 0;
        for (let i = 0; i < 500; i++) {
          const s = net.connect(${JSON.stringify(endpoint)});
          s.on('connect', () => { if (++open === 500) console.log('open'); });
          s.on('error', () => {});
          s.on('close', () => { if (++closed === 500) { console.log('closed'); process.exit(0); } });
        }
        setTimeout(() => { console.log('gave up: ' + closed + ' closed'); process.exit(1); }, 60000);`;
      const child = spawn('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      await waitFor(() => /open|closed|gave up/.test(out), 'the connections to open', 60_000);
      const during = fds(master);
      assert.equal(await exited, 0, `the master kept silent connections open: ${out}`);
      assert.ok(during - baseline <= 64 + 10, `${during - baseline} more fds while 500 silent connections were open (cap 64)`);
      await waitFor(() => fds(master) <= baseline + 5, 'the master to be back to its fds');
      assert.match(read(path.join(dir, 'logs', 'wsgid.log')), /closed a dispatch connection without hello/);
    });
  });
});
