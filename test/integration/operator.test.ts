/**
 * The operator's small truths (issues 18 and 19), against the real CLI and daemon: what `restart`,
 * `status`, `stop` and the logs say must be what is so.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { cliAppFolder, runCli, workerPids, waitFor } from '../helpers/processes.js';

function log(dir: string, file = 'wsgid.log'): string {
  try {
    return readFileSync(path.join(dir, 'logs', file), 'utf8');
  } catch {
    return '';
  }
}

describe('operator truths', { timeout: 600_000 }, () => {
  const folders: Array<{ parent: string; dir: string }> = [];
  after(async () => {
    for (const { parent, dir } of folders) {
      await runCli(['stop', `--app-path=${dir}`, '--send-signal=INT']);
      rmSync(parent, { recursive: true, force: true });
    }
  });

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
});
