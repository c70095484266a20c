/**
 * A pid file left by a SIGKILLed master, whose pid the kernel later gives to an
 * unrelated program, must not make `status` say running, `start` refuse, or `stop`/`restart`
 * signal that program. The kernel cannot be made to reuse a given pid, so the test does the
 * reverse: it moves the dead master's pid file (its start-time identity included) to the pid of a
 * live bystander process, which is exactly what the folder looks like after a reuse.
 *
 * The bystander survives signals and reports each one on stdout, so "was never signalled" is
 * checked without timing: after the commands, the test sends it SIGWINCH itself; any signal wsgid
 * sent earlier is reported before that one (pending signals are delivered lowest number first, and
 * TERM, HUP, INT, QUIT, USR1 are all below WINCH).
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startWsgid } from '../helpers/wsgid.js';
import { cliAppFolder, listedPids, runCli, waitUntil as waitFor } from '../helpers/processes.js';

/** The wsgid CLI, run to completion. */
const wsgid = runCli;

/** The master's own ready line (a worker logs "ready" earlier). */
const MASTER_READY = /\[master \d+\] ready\b/;

const folders: string[] = [];
const bystanders: ChildProcess[] = [];

async function appFolder(): Promise<{ dir: string; args: string[] }> {
  const { parent, dir, args } = await cliAppFolder('wsgid-stale-');
  folders.push(parent);
  return { dir, args };
}

const pids = listedPids;

const BYSTANDER = `
  const seen = (name) => () => process.stdout.write(name + '\\n');
  for (const s of ['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGTTIN', 'SIGTTOU', 'SIGWINCH']) process.on(s, seen(s));
  setInterval(() => {}, 1 << 30);
  process.stdout.write('ready\\n');`;

/** A harmless long-lived process that reports every signal it gets. */
async function bystander(): Promise<{ pid: number; signalsSoFar(): Promise<string[]> }> {
  const child = spawn(process.execPath, ['-e', BYSTANDER], { stdio: ['ignore', 'pipe', 'inherit'] });
  bystanders.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(() => out.includes('ready\n'), 'the bystander to start');
  let marks = 0;
  return {
    pid: child.pid!,
    /** Every signal received before now (sends SIGWINCH as the marker and waits for it). */
    async signalsSoFar() {
      marks++;
      child.kill('SIGWINCH');
      await waitFor(() => out.split('\n').filter((l) => l === 'SIGWINCH').length === marks, 'the bystander to report SIGWINCH');
      return out.split('\n').filter((l) => l.startsWith('SIG') && l !== 'SIGWINCH');
    },
  };
}

after(() => {
  for (const child of bystanders) child.kill('SIGKILL');
  for (const dir of folders) {
    for (const role of ['master', 'worker'] as const) {
      for (const pid of pids(path.join(dir, 'site'), role)) {
        if (bystanders.some((b) => b.pid === pid)) continue;
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

describe('stale pid files', () => {
  test('a dead master whose pid was reused: status says stopped, stop and restart signal nothing, start succeeds and cleans up', async () => {
    const { dir, args } = await appFolder();
    const pidDir = path.join(dir, 'pid');

    // A real master, killed with SIGKILL: it leaves its pid file, status.json and socket folder.
    const first = await startWsgid(['--no-daemon', ...args]);
    await first.waitForOutput(MASTER_READY, 30_000);
    const dead = first.pid;
    await waitFor(() => existsSync(path.join(pidDir, 'status.json')), 'the status file');
    assert.ok(existsSync(path.join(pidDir, `.d${dead}`)), 'the socket folder');
    const recorded = readFileSync(path.join(pidDir, 'master', `${dead}.pid`), 'utf8');
    assert.match(recorded, new RegExp(`^${dead}\\n`), 'line 1 is the pid');
    await first.stop('SIGKILL');

    // The kernel gives the pid to an unrelated program.
    const other = await bystander();
    writeFileSync(path.join(pidDir, 'master', `${dead}.pid`), recorded.replace(/^\d+/, String(other.pid)));
    renameSync(path.join(pidDir, 'master', `${dead}.pid`), path.join(pidDir, 'master', `${other.pid}.pid`));

    const status = await wsgid(['status', `--app-path=${dir}`]);
    assert.equal(status.code, 3, status.stdout + status.stderr);
    assert.match(status.stdout, /Status: Stopped/);
    const json = await wsgid(['status', '--json', `--app-path=${dir}`]);
    const report = JSON.parse(json.stdout) as { status: string; master: { pid: number; alive: boolean }[]; uptime?: number };
    assert.equal(report.status, 'stopped');
    assert.deepEqual(report.master.map((m) => [m.pid, m.alive]), [[other.pid, false]]);
    assert.equal(report.uptime, undefined, 'no numbers from a dead master\'s status.json');

    const restart = await wsgid(['restart', `--app-path=${dir}`]);
    assert.equal(restart.code, 3, restart.stdout + restart.stderr);

    // Started again: not refused; the dead master's leftovers are gone.
    const second = await startWsgid(['--no-daemon', ...args]);
    try {
      await second.waitForOutput(MASTER_READY, 30_000);
      assert.deepEqual(pids(dir, 'master'), [second.pid]);
      assert.ok(!existsSync(path.join(pidDir, `.d${dead}`)), 'the dead master\'s socket folder is removed');
      await waitFor(() => existsSync(path.join(pidDir, 'status.json')), 'the new status file');
      const owner = (JSON.parse(readFileSync(path.join(pidDir, 'status.json'), 'utf8')) as { master: { pid: number } }).master.pid;
      assert.equal(owner, second.pid);
    } finally {
      assert.equal(await second.stop(), 0, second.output());
    }
    assert.deepEqual(await other.signalsSoFar(), [], 'the bystander was never signalled');
  });

  test('wsgid stop never signals a live process named by a stale pid file', async () => {
    const { dir } = await appFolder();
    const other = await bystander();
    // The dead master's start time, as it recorded it: any other process's start time.
    const self = readFileSync(`/proc/${process.pid}/stat`, 'utf8');
    const ticks = self.slice(self.lastIndexOf(')') + 2).split(' ')[19];
    writeFileSync(path.join(dir, 'pid', 'master', `${other.pid}.pid`), `${other.pid}\n${ticks}\n`);

    const stop = await wsgid(['stop', `--app-path=${dir}`]);
    assert.equal(stop.code, 0, stop.stdout + stop.stderr);
    assert.match(stop.stdout, /not running/);
    assert.deepEqual(pids(dir, 'master'), [], 'the stale file is removed');
    assert.deepEqual(await other.signalsSoFar(), [], 'the bystander was never signalled');
  });

  test('an older one-line pid file whose process started after it was written is stale', async () => {
    const { dir, args } = await appFolder();
    const other = await bystander();
    const file = path.join(dir, 'pid', 'master', `${other.pid}.pid`);
    writeFileSync(file, `${other.pid}\n`);
    const anHourAgo = new Date(Date.now() - 3600_000);
    utimesSync(file, anHourAgo, anHourAgo);

    const status = await wsgid(['status', `--app-path=${dir}`]);
    assert.equal(status.code, 3, status.stdout + status.stderr);
    const started = await startWsgid(['--no-daemon', ...args]);
    try {
      await started.waitForOutput(MASTER_READY, 30_000);
      assert.deepEqual(pids(dir, 'master'), [started.pid], 'start removed the stale file');
    } finally {
      assert.equal(await started.stop(), 0, started.output());
    }
    assert.deepEqual(await other.signalsSoFar(), [], 'the bystander was never signalled');
  });
});
