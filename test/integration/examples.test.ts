/**
 * Every example in examples/ served through a REAL mongrel2 by the built CLI, from its own folder
 * and without --wsgi-app (detection only), with a real HTTP client.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { startMongrel2 } from '../helpers/mongrel2.js';
import { REPO_ROOT, WSGID_CLI, startWsgid } from '../helpers/wsgid.js';
import { request } from '../helpers/http.js';

const EXAMPLES = path.join(REPO_ROOT, 'examples');

interface Expectation {
  /** Text of `GET /`. */
  readonly greeting: RegExp;
  /** What the app log line says it loaded. */
  readonly loaded: RegExp;
  /** Does it implement POST /echo? */
  readonly echo: boolean;
}

const CASES: Record<string, Expectation> = {
  hono: { greeting: /Hono/, loaded: /app\/server\.js \(default export, object with fetch\(\)/, echo: true },
  express: { greeting: /Express/, loaded: /app\/server\.js \(server it started \(listen port 3000\), http\.Server; from package\.json main\)/, echo: true },
  koa: { greeting: /Koa/, loaded: /app\/index\.mjs \(default export, Koa app/, echo: false },
  fastify: { greeting: /Fastify/, loaded: /app\/server\.js \(server it started \(listen port 3000 on 127\.0\.0\.1\)/, echo: true },
  typescript: { greeting: /TypeScript/, loaded: /app\/src\/server\.ts \(default export, object with fetch\(\); from package\.json wsgid\)/, echo: true },
  'custom-loader': { greeting: /custom loader plugin/, loaded: /loader plugin \\?"routes-folder\\?"/, echo: false },
};

async function withExample<T>(name: string, run: (baseUrl: string, output: () => string) => Promise<T>): Promise<T> {
  const m2 = await startMongrel2();
  const h = m2.handler('app');
  let wsgid: Awaited<ReturnType<typeof startWsgid>> | undefined;
  try {
    wsgid = await startWsgid(['--no-daemon', '--stdout', `--app-path=${path.join(EXAMPLES, name)}`, `--recv=${h.recv}`, `--send=${h.send}`], {
      readyUrl: `${m2.baseUrl}/`,
      readyTimeoutMs: 30_000,
    });
    const w = wsgid;
    return await run(m2.baseUrl, () => w.output());
  } finally {
    if (wsgid) await wsgid.stop();
    await m2.stop();
  }
}

describe('examples through mongrel2, detected without --wsgi-app', () => {
  for (const [name, expected] of Object.entries(CASES)) {
    test(name, async () => {
      await withExample(name, async (baseUrl, output) => {
        const root = await request(`${baseUrl}/`);
        assert.equal(root.status, 200, root.text);
        assert.match(root.text, expected.greeting);
        assert.match(output(), expected.loaded);

        const hello = await request(`${baseUrl}/hello/ada`);
        assert.equal(hello.status, 200, hello.text);
        assert.match(String(hello.headers['content-type']), /application\/json/);
        const body = JSON.parse(hello.text) as { hello: string; via: string };
        assert.equal(body.hello, 'ada');
        assert.equal(body.via, name);

        if (expected.echo) {
          const echo = await request(`${baseUrl}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":1}' });
          assert.equal(echo.status, 200, echo.text);
          assert.match(echo.text, /"received":/);
        }
        const missing = await request(`${baseUrl}/definitely/not/here`);
        assert.equal(missing.status, 404);
        // The self-listening examples never bound their port.
        assert.doesNotMatch(output(), /EADDRINUSE/);
      });
    });
  }

  test('custom-loader: the filter plugin rewrites /greet/x and tags responses', async () => {
    await withExample('custom-loader', async (baseUrl) => {
      const response = await request(`${baseUrl}/greet/bob`);
      assert.equal(response.status, 200, response.text);
      assert.equal((JSON.parse(response.text) as { hello: string }).hello, 'bob');
      assert.equal(response.headers['x-filtered-by'], 'custom-loader example');
    });
  });

  test('custom-loader: `wsgid routes` comes from a command plugin', () => {
    const result = spawnSync(process.execPath, [WSGID_CLI, 'routes', `--app-path=${path.join(EXAMPLES, 'custom-loader')}`], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^\/\s+app\/routes\/index\.mjs$/m);
    assert.match(result.stdout, /^\/hello\s+app\/routes\/hello\.mjs$/m);
  });
});

describe('`npm run example` (the last step of scripts/quickstart.sh, the README\'s first command)', () => {
  test('serves examples/hono through its own mongrel2 at the URL it prints; Ctrl-C stops both', { timeout: 120_000 }, async () => {
    const script = path.join(REPO_ROOT, 'dist', 'examples', 'serve-example.js');
    const child = spawn(process.execPath, [script], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    // 'close': the exit code once every line it printed has been read.
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const look = (): void => {
          const m = /example "hono" is served by wsgid behind mongrel2 at (http:\/\/\S+?)\/ {2}\(try (\S+);/.exec(output);
          if (m) resolve(m[1]!);
        };
        child.stdout.on('data', look);
        void exited.then((code) => reject(new Error(`serve-example exited (${code}) before printing its URL:\n${output}`)));
      });
      const hello = await request(`${url}/hello/you`);
      assert.equal(hello.status, 200, hello.text);
      assert.deepEqual(JSON.parse(hello.text), { hello: 'you', via: 'hono' });
      const master = Number(/\[master (\d+)\] master started/.exec(output)?.[1]);
      assert.ok(master > 0, output);
      child.kill('SIGINT');
      assert.equal(await exited, 0, output);
      assert.match(output, /\[master \d+\] TERM: graceful stop[^]*\[master \d+\] worker exited worker=1 pid=\d+ exit="code 0"/, 'wsgid was stopped in order');
      assert.throws(() => process.kill(master, 0), /ESRCH/, 'the wsgid master is gone');
      await assert.rejects(request(`${url}/`, { timeoutMs: 5000 }), 'mongrel2 is gone too');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
