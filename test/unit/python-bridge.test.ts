/**
 * The Python bridges' own unit tests (test/python/test_*.py, the standard library's unittest, on
 * Debian's python3) run from here so that `npm test` runs them; and the frame letters, declared once
 * in gateways/python/pipe.ts, agree with the bridges' T_* constants.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { T } from '../../src/gateways/python/pipe.js';
import { REPO_ROOT } from '../helpers/wsgid.js';

const PYTHON = '/usr/bin/python3';

function run(args: string[]): Promise<{ code: number; output: string; stdout: string }> {
  return new Promise((resolve) => {
    execFile(PYTHON, args, { cwd: REPO_ROOT, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, output: stdout + stderr, stdout });
    });
  });
}

test('the bridge unit tests (python3 -m unittest discover -s test/python) pass', { timeout: 180_000 }, async () => {
  const { code, output } = await run(['-m', 'unittest', 'discover', '-s', 'test/python', '-v']);
  assert.equal(code, 0, output);
  assert.match(output, /^Ran [1-9]\d* tests? in /m);
  assert.match(output, /^OK$/m);
});

test("the bridges' frame letters are pipe.ts's, one letter per frame", async () => {
  const script = [
    'import json, sys',
    `sys.path.insert(0, ${JSON.stringify(path.join(REPO_ROOT, 'src', 'gateways', 'python', 'bridge'))})`,
    'import wsgid_bridge_common as c',
    'print(json.dumps({k[2:]: v for k, v in vars(c).items() if k.startswith("T_")}))',
  ].join('\n');
  const { code, output, stdout } = await run(['-c', script]);
  assert.equal(code, 0, output);
  const python = JSON.parse(stdout) as Record<string, number>;
  const upperSnake = (name: string): string => name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
  const ours = Object.fromEntries(Object.entries(T).map(([name, letter]) => [upperSnake(name), letter]));
  assert.deepEqual(python, ours);
  assert.equal(new Set(Object.values(T)).size, Object.keys(T).length, 'two frames share a letter');
});
