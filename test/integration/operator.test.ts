/**
 * The operator's small truths, against the real CLI and daemon: what `restart`,
 * `status`, `stop` and the logs say must be what is so.
 */
import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request } from '../helpers/http.js';
import { alive, cliAppFolder, listedPids, runCli, workerPids, waitFor, block } from '../helpers/processes.js';
import { WSGID_CLI } from '../helpers/wsgid.js';

const PYTHON = '/usr/bin/python3';

function log(dir: string, file = 'wsgid.log'): string {
  try {
    return readFileSync(path.join(dir, 'logs', file), 'utf8');
  } catch {
    return '';
  }
}


/** What Python itself prints for `python3 -c CODE` in `cwd`, without the `<string>` frame. */
function pythonSays(cwd: string, code: string): string[] {
  const oracle = spawnSync(PYTHON, ['-c', code], { cwd, encoding: 'utf8' });
  return oracle.stderr.trimEnd().split('\n').filter((l) => !/^ {2}File "<string>", line 1, in <module>$/.test(l));
}

describe('operator truths', { timeout: 600_000 }, () => {
  const folders: Array<{ parent: string; dir: string }> = [];
  let m2: Mongrel2Handle | undefined;
  before(async () => {
    m2 = await startMongrel2();
  });
  after(async () => {
    for (const { parent, dir } of folders) {
      await runCli(['stop', `--app-path=${dir}`, '--send-signal=INT']);
      rmSync(parent, { recursive: true, force: true });
    }
    await m2?.stop();
  });
  // One daemon at a time: a failed test's must not answer the next test's requests on the same handler.
  afterEach(async () => {
    const last = folders.at(-1);
    if (last) await runCli(['stop', `--app-path=${last.dir}`, '--send-signal=INT']);
  });

  /** Start the daemon on `dir` behind mongrel2's `app` handler (one test at a time uses it). */
  async function served(dir: string, extra: string[]): Promise<void> {
    const h = m2!.handler('app');
    const start = await runCli([`--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`, '--workers=1', ...extra]);
    assert.equal(start.code, 0, start.stdout + start.stderr + log(dir));
  }

  async function folder(prefix: string): Promise<{ parent: string; dir: string; args: string[] }> {
    const f = await cliAppFolder(prefix);
    folders.push(f);
    return f;
  }

  test('a wsgid.json change the command line overrides: restart says so and how to let the file decide', async () => {
    const { dir, args } = await folder('wsgid-op-override-');
    const start = await runCli([...args.filter((a) => !a.startsWith('--workers')), '--workers=2']);
    assert.equal(start.code, 0, start.stdout + start.stderr + log(dir));
    const saved = await runCli(['config', `--app-path=${dir}`, '--workers=1']);
    assert.equal(saved.code, 0, saved.stderr);
    const restart = await runCli(['restart', `--app-path=${dir}`]);
    assert.equal(restart.code, 0, restart.stdout + restart.stderr);
    assert.match(restart.stdout, /reloaded: 2 new worker\(s\) ready/);
    assert.match(restart.stderr, /wsgid\.json is overridden by the master's command line.*--workers=2 \(wsgid\.json: 1\)/);
    assert.match(restart.stderr, /stop and start again without --workers/);
    assert.match(log(dir), /wsgid\.json values overridden by the command line.*--workers=2 \(wsgid\.json: 1\)/);
    await waitFor('2 workers', async () => (await workerPids(dir)).length === 2 || undefined);
    const stop = await runCli(['stop', `--app-path=${dir}`]);
    assert.equal(stop.code, 0, stop.stderr);
  });

  test('control commands outside an app folder (inside app/): exit 2 naming the path checked, not "Stopped"', async () => {
    const { dir } = await folder('wsgid-op-notapp-');
    const inside = path.join(dir, 'app');
    for (const command of ['status', 'stop', 'restart', 'reload', 'reopen-logs']) {
      // As an operator types it: in the folder, no --app-path.
      const r = await runCli([command], 60_000, { cwd: inside });
      assert.equal(r.code, 2, `${command}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stdout, '', command);
      assert.equal(r.stderr, `wsgid: ${inside} is not a wsgid app folder: it has no pid/, logs/, wsgid.json (did you mean --app-path=${dir}?)\n`, command);
    }
    const json = await runCli(['status', '--json', `--app-path=${inside}`]);
    assert.equal(json.code, 2, json.stdout);
    // The app folder itself still answers as before.
    const status = await runCli(['status', `--app-path=${dir}`]);
    assert.equal(status.code, 3, status.stderr);
    assert.match(status.stdout, /^Status: Stopped\n/);
  });

  const RAISES = 'def application(environ, start_response):\n    return [str(divide(1, 0)).encode()]\n\n\ndef divide(a, b):\n    return a / b\n';

  for (const format of ['text', 'json'] as const) {
    test(`a WSGI app's exception: its traceback in wsgid.log as Python prints it (--log-format=${format}), not one line of \\n`, async () => {
      const { dir } = await folder(`wsgid-op-tb-${format}-`);
      rmSync(path.join(dir, 'app', 'server.mjs'));
      writeFileSync(path.join(dir, 'app', 'app.py'), RAISES);
      await served(dir, [`--python=${PYTHON}`, `--log-format=${format}`]);
      const r = await request(`${m2!.baseUrl}/`);
      assert.equal(r.status, 500);
      const wsgidLog = await waitFor('the exception logged', async () => (/raised an exception/.test(log(dir)) ? log(dir) : undefined));
      // Python's own traceback.print_exc() for the same call (the oracle), from the raising frame on.
      const expected = pythonSays(path.join(dir, 'app'), 'import app, traceback\ntry:\n    app.application({}, None)\nexcept Exception:\n    traceback.print_exc()');
      const fromApp = expected.slice(expected.findIndex((l) => /app\.py", line 2, in application/.test(l)));
      let shown: string[];
      if (format === 'text') {
        assert.doesNotMatch(wsgidLog, /traceback="/);
        const lines = block(wsgidLog, /raised an exception/, /^ {2}ZeroDivisionError/).slice(1);
        assert.ok(lines.every((l) => l.startsWith('  ')), lines.join('\n'));
        shown = lines.map((l) => l.slice(2));
      } else {
        const entry = wsgidLog.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; traceback?: string }).find((l) => /raised an exception/.test(l.msg));
        assert.ok(entry?.traceback, wsgidLog);
        shown = entry.traceback.trimEnd().split('\n');
      }
      assert.equal(shown[0], 'Traceback (most recent call last):');
      assert.deepEqual(shown.slice(shown.findIndex((l) => /app\.py", line 2, in application/.test(l))), fromApp);
      assert.equal((await runCli(['stop', `--app-path=${dir}`])).code, 0);
    });
  }

  test("a reload whose Python app has a SyntaxError: restart shows file, line and caret as Python does", async () => {
    const { dir } = await folder('wsgid-op-syntax-');
    rmSync(path.join(dir, 'app', 'server.mjs'));
    writeFileSync(path.join(dir, 'app', 'app.py'), 'def application(environ, start_response):\n    start_response("200 OK", [])\n    return [b"v1"]\n');
    await served(dir, [`--python=${PYTHON}`]);
    writeFileSync(path.join(dir, 'app', 'app.py'), 'def application(environ, start_response):\n    return [b"x"\n\nx = (1 +\n');
    const restart = await runCli(['restart', `--app-path=${dir}`]);
    assert.equal(restart.code, 4, restart.stdout + restart.stderr);
    assert.match(restart.stderr, /reload failed: .*SyntaxError/);
    const expected = pythonSays(path.join(dir, 'app'), 'import app');
    assert.match(expected.join('\n'), /File ".*app\.py", line \d+/);
    assert.deepEqual(block(restart.stderr, /^Traceback \(most recent call last\):$/, /^SyntaxError: /), expected);
    assert.equal((await request(`${m2!.baseUrl}/`)).body.toString(), 'v1');
    assert.equal((await runCli(['stop', `--app-path=${dir}`])).code, 0);
  });

  test('a crash loop: status says why the last worker died (its exit and last stderr line), in text and --json', async () => {
    const { dir, args } = await folder('wsgid-op-crash-');
    // Ready, then dead a moment later, saying why on stderr: a crash loop with no request needed.
    writeFileSync(
      path.join(dir, 'app', 'server.mjs'),
      "setTimeout(() => { console.error('fatal: the database at db.internal:5432 is gone'); process.exit(7); }, 300);\nexport default () => new Response('hi');\n",
    );
    const start = await runCli([...args, '--crash-window=600', '--crash-loop-after=2', '--crash-backoff-max=600']);
    assert.equal(start.code, 0, start.stdout + start.stderr + log(dir));
    interface Report { status: string; lastDeath?: { exit: string; booting: boolean; lastStderr?: string; worker: number; pid: number } }
    const report = await waitFor('the crash loop', async () => {
      const r = await runCli(['status', '--json', `--app-path=${dir}`]);
      const parsed = JSON.parse(r.stdout) as Report;
      return parsed.status === 'crash-looping' && parsed.lastDeath?.lastStderr ? parsed : undefined;
    });
    assert.equal(report.lastDeath?.exit, 'code 7');
    assert.equal(report.lastDeath?.booting, false);
    assert.equal(report.lastDeath?.lastStderr, 'fatal: the database at db.internal:5432 is gone');
    const text = await runCli(['status', `--app-path=${dir}`]);
    assert.equal(text.code, 1);
    assert.match(text.stdout, /^Last death: worker \d+ \(pid \d+\) exited with code 7: fatal: the database at db\.internal:5432 is gone$/m);
    assert.equal((await runCli(['stop', `--app-path=${dir}`, '--send-signal=INT'])).code, 0);
  });

  test('--app-output-rate: a thread printing in a loop is held to its rate (with a burst); the drops are counted in app.log', async () => {
    const { dir, args } = await folder('wsgid-op-flood-');
    rmSync(path.join(dir, 'app', 'server.mjs'));
    const line = 'x'.repeat(100);
    writeFileSync(
      path.join(dir, 'app', 'app.py'),
      [
        'import sys, threading',
        'def flood():',
        '    while True:',
        `        print("${line}")`,
        'threading.Thread(target=flood, daemon=True).start()',
        'def application(environ, start_response):',
        '    start_response("200 OK", [("Content-Type", "text/plain")])',
        '    return [b"ok"]',
        '',
      ].join('\n'),
    );
    const rate = 64 * 1024;
    const began = Date.now();
    const start = await runCli([...args, `--python=${PYTHON}`, '--app-output-rate=64K']);
    assert.equal(start.code, 0, start.stdout + start.stderr + log(dir));
    const drop = await waitFor('a "dropped" line', async () => /\[master \d+\] worker \d+ \(pid \d+\): dropped (\d+) line\(s\), (\d+) byte\(s\) of app output over --app-output-rate \(65536 bytes\/s\)/.exec(log(dir, 'app.log')) ?? undefined);
    assert.ok(Number(drop[1]) > 0 && Number(drop[2]) >= Number(drop[1]) * 101, drop[0]);
    const appLog = log(dir, 'app.log');
    const elapsed = (Date.now() - began) / 1000;
    // What passed is at most the burst (4 s worth) plus the rate over the time it ran: an upper bound, whatever the machine's speed.
    const passed = appLog.split('\n').filter((l) => l.endsWith('] ' + line)).length * (line.length + 1);
    assert.ok(passed > 0, 'some lines pass');
    assert.ok(passed <= rate * (4 + elapsed), `${passed} bytes passed in ${elapsed} s`);
    assert.equal((await runCli(['stop', `--app-path=${dir}`])).code, 0);
  });

  const root = process.getuid?.() === 0;

  test('an app folder that turns read-only: status, restart and stop say so (path, EROFS), no stack trace', { skip: !root && 'needs root to bind-mount the folder read-only' }, async () => {
    const { dir, args } = await folder('wsgid-op-erofs-');
    const start = await runCli([...args.filter((a) => !a.startsWith('--workers')), '--workers=2']);
    assert.equal(start.code, 0, start.stdout + start.stderr + log(dir));
    // A read-only bind mount over the folder: what the master already has open still works, nothing new can be written.
    execFileSync('mount', ['--bind', dir, dir]);
    try {
      execFileSync('mount', ['-o', 'remount,bind,ro', dir]);
      const [victim] = await workerPids(dir);
      process.kill(victim!, 'SIGKILL');
      const problem = new RegExp(`${dir}/pid, ${dir}/pid/worker, ${dir}/logs: read-only file system \\(EROFS\\)`);
      const status = await runCli(['status', `--app-path=${dir}`]);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, new RegExp(`^Problem: ${problem.source}`, 'm'));
      const json = JSON.parse((await runCli(['status', '--json', `--app-path=${dir}`])).stdout) as { problems?: string[] };
      assert.match(json.problems?.[0] ?? '', problem);
      // The master says in its log (its open file) why the replacement cannot boot.
      await waitFor('the boot failure logged', async () => /worker failed to boot.*cannot open its log logs\/wsgid\.log: EROFS/.test(log(dir)) || undefined);
      const restart = await runCli(['restart', `--app-path=${dir}`]);
      assert.equal(restart.code, 1, restart.stdout + restart.stderr);
      assert.match(restart.stderr, /reload's outcome cannot be known: .*read-only file system \(EROFS\)/);
      assert.doesNotMatch(restart.stderr, /outcome is unknown/);
      const stop = await runCli(['stop', `--app-path=${dir}`]);
      assert.equal(stop.code, 0, stop.stdout + stop.stderr);
      assert.match(stop.stdout, /^stopped$/m);
      assert.match(stop.stderr, /could not remove the stale pid files and status in .*\/pid: EROFS: read-only file system/);
      for (const text of [status.stderr, restart.stderr, stop.stderr]) assert.doesNotMatch(text, /^\s+at /m);
    } finally {
      execFileSync('umount', [dir]);
    }
  });

  test('out of file descriptors: start warns when the limit is below what the settings need; a HUP says EMFILE, not "config invalid"', { skip: !root && 'needs root for prlimit on the master' }, async () => {
    const { dir, args } = await folder('wsgid-op-emfile-');
    const quoted = [process.execPath, WSGID_CLI, ...args, '--worker-connections=500'].map((a) => `'${a}'`).join(' ');
    const start = spawnSync('bash', ['-c', `ulimit -n 256 && exec ${quoted}`], { encoding: 'utf8' });
    assert.equal(start.status, 0, start.stdout + start.stderr + log(dir));
    assert.match(start.stderr, /^wsgid: warning: the open-file limit is 256, below the \d+ that --workers=1 and --worker-connections=500 need .*raise it \(ulimit -n, systemd LimitNOFILE=\)$/m);
    assert.match(log(dir), /WARN .*the open-file limit is 256/);
    // wsgid.json exists, so the HUP has a file to open; then the master gets fewer descriptors than it holds.
    assert.equal((await runCli(['config', `--app-path=${dir}`, '--max-requests=1000'])).code, 0);
    const [master] = listedPids(dir, 'master');
    const held = readdirSync(`/proc/${master}/fd`).length;
    execFileSync('prlimit', ['--pid', String(master), `--nofile=${held - 2}:`]);
    try {
      const restart = await runCli(['restart', `--app-path=${dir}`]);
      assert.equal(restart.code, 1, restart.stdout + restart.stderr);
      // Where it strikes first (reading wsgid.json, or spawning the new worker: ZeroMQ's reconnects free and take descriptors) varies; what it is does not.
      const where = 'cannot (?:read .*wsgid\\.json|spawn a worker): out of file descriptors \\(EMFILE, limit \\d+\\); raise the limit';
      assert.match(restart.stderr, new RegExp(`reload failed: ${where}`));
      assert.doesNotMatch(restart.stderr, /invalid|unknown/);
      assert.doesNotMatch(log(dir), /HUP: the configuration is invalid/);
      const status = await runCli(['status', `--app-path=${dir}`]);
      assert.match(status.stdout, /^Problem: cannot [^:]+: out of file descriptors \(EMFILE, limit \d+\); raise the limit/m);
    } finally {
      execFileSync('prlimit', ['--pid', String(master), '--nofile=256:']);
    }
    assert.equal((await runCli(['stop', `--app-path=${dir}`])).code, 0);
  });

  test('stop during start wins: the start in progress and its daemon stop, nothing stays up', async () => {
    const { dir, args } = await folder('wsgid-op-stopstart-');
    const start = spawn(process.execPath, [WSGID_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    start.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    start.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
    const startExit = new Promise<number | null>((resolve) => start.once('exit', (code) => resolve(code)));
    // As soon as `start` says it is starting (long before its daemon is ready, or even spawned):
    await waitFor('"starting wsgid"', async () => out.includes('starting wsgid in') || undefined);
    const stop = await runCli(['stop', `--app-path=${dir}`]);
    assert.equal(stop.code, 0, stop.stdout + stop.stderr);
    assert.match(stop.stdout, /^sent SIGTERM to master pid .*\nstopped\n$/s);
    assert.equal(await startExit, 1, out);
    assert.match(out, /wsgid start: stopped by SIGTERM before the app was ready/);
    // Nothing of it is left: no pid file, and no process of the app folder (daemon or worker) alive.
    assert.deepEqual([...listedPids(dir, 'master'), ...listedPids(dir, 'worker')], []);
    const left = readdirSync('/proc').filter((p) => /^\d+$/.test(p) && alive(Number(p))).filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`--app-path=${dir}`);
      } catch {
        return false;
      }
    });
    assert.deepEqual(left, []);
    const status = await runCli(['status', `--app-path=${dir}`]);
    assert.equal(status.code, 3, status.stdout);
  });

  test('pid/status.json is 0640 like the logs, given to the folder owner: status works for the owner and root', { skip: !root && 'needs root to start as root in a folder another user owns' }, async () => {
    const { parent, dir, args } = await folder('wsgid-op-mode-');
    const NOBODY = 65534;
    execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, parent]);
    const start = await runCli(args);
    assert.equal(start.code, 0, start.stdout + start.stderr + log(dir));
    const file = path.join(dir, 'pid', 'status.json');
    await waitFor('status.json', async () => {
      try {
        return statSync(file).isFile();
      } catch {
        return undefined;
      }
    });
    const st = statSync(file);
    assert.equal(st.mode & 0o777, 0o640, (st.mode & 0o777).toString(8));
    assert.equal(st.mode & 0o777, statSync(path.join(dir, 'logs', 'wsgid.log')).mode & 0o777);
    assert.deepEqual([st.uid, st.gid], [NOBODY, NOBODY]);
    // The numbers (the "Master N: up" line) come from status.json: both can read it.
    for (const uid of [0, NOBODY]) {
      const r = spawnSync(process.execPath, [WSGID_CLI, 'status', `--app-path=${dir}`], { encoding: 'utf8', uid, gid: uid });
      assert.equal(r.status, 0, `uid ${uid}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /^Master \d+: up /m, `uid ${uid}`);
    }
    assert.equal((await runCli(['stop', `--app-path=${dir}`])).code, 0);
  });
});
