/**
 * The bench's real-app rows stay measurable: `npm run bench` serves the Django project
 * (bench/apps/djangosite) through wsgid beside gunicorn and the FastAPI app (bench/apps/fastapi_items)
 * through wsgid beside uvicorn, and each pair answers its check with the same body bytes (else the
 * bench reports the case as skipped instead of measuring it). Runs the built bench itself for one
 * second per case: real mongrel2, wsgid, gunicorn, uvicorn, nginx in front of the references and wrk;
 * no timing is asserted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from '../helpers/wsgid.js';

const CASES = ['django-site-w1', 'gunicorn-django-site', 'nginx-gunicorn-django-site', 'fastapi-w1', 'uvicorn-fastapi', 'nginx-uvicorn-fastapi'];

interface BenchCase {
  skipped?: string;
  rps?: number;
  requests?: number;
  non2xx?: number;
}

function runBench(env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'dist', 'bench', 'run.js')], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

test('bench: the Django project and the FastAPI app are measured under wsgid and their reference servers, with the same bodies', { timeout: 300_000 }, async () => {
  const { code, stdout, stderr } = await runBench({ BENCH_CASES: CASES.join(','), BENCH_DURATION: '1', BENCH_WARMUP: '1' });
  assert.equal(code, 0, `bench exited with ${code}\n${stderr}\n${stdout}`);
  const lines = stdout.trim().split('\n');
  const summary = JSON.parse(lines[lines.length - 1]!) as { cases: Record<string, BenchCase> };
  for (const id of CASES) {
    const c = summary.cases[id];
    assert.ok(c, `${id} missing from the summary: ${lines[lines.length - 1]}`);
    assert.equal(c.skipped, undefined, `${id} was not measured: ${c.skipped}\n${stderr}`);
    assert.ok((c.requests ?? 0) > 0, `${id}: no requests`);
    assert.equal(c.non2xx, 0, `${id}: non-2xx answers under load`);
  }
  assert.match(stdout, /^Django project via wsgid vs gunicorn: rate [\d.]+×, p99 [\d.]+×, cpu\/req [\d.]+×$/m);
  assert.match(stdout, /^FastAPI via wsgid vs uvicorn: rate [\d.]+×, p99 [\d.]+×, cpu\/req [\d.]+×$/m);
  // The whole stacks: mongrel2 + wsgid against nginx (in front of the same reference servers).
  assert.match(stdout, /^stack: mongrel2 \+ wsgid Django project vs nginx \+ gunicorn: rate [\d.]+×, p99 [\d.]+×, stack cpu\/req [\d.]+×$/m);
  assert.match(stdout, /^stack: mongrel2 \+ wsgid FastAPI vs nginx \+ uvicorn: rate [\d.]+×, p99 [\d.]+×, stack cpu\/req [\d.]+×$/m);
  for (const id of ['nginx-gunicorn-django-site', 'nginx-uvicorn-fastapi']) {
    const c = summary.cases[id] as BenchCase & { nginxUsPerReq?: number | null };
    assert.ok((c.nginxUsPerReq ?? 0) > 0, `${id}: nginx's CPU was not counted`);
  }
});
