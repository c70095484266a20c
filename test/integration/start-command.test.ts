/**
 * `npm start` as written, run inside wsgid's workers: the start script's
 * environment assignments, its arguments (`--` included), a bin of node_modules/.bin, `--command`,
 * and the working folder app/. The oracle is npm itself: the same app folder's `npm start`, on a
 * port, answers the same request with what it saw (cwd, NODE_ENV, argv), and the two must agree.
 * Also: a fastify-cli plugin whose fastify is missing is refused (exit 4), never served as a
 * (req, res) listener that answers 500.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { freePort, startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request, waitForHttp } from '../helpers/http.js';
import { appFolderOf, runCli } from '../helpers/processes.js';
import { startWsgid, wsgidArgs } from '../helpers/wsgid.js';

/** An app that answers with what its process sees, listening as `npm start` would run it. */
const REPORTER = `
const http = require('node:http');
const server = http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({
    cwd: process.cwd(),
    nodeEnv: process.env.NODE_ENV ?? null,
    greeting: process.env.GREETING ?? null,
    script: require('node:path').basename(process.argv[1]),
    args: process.argv.slice(2),
    main: require.main === module || require.main?.filename === __filename,
  }));
});
server.listen(Number(process.env.PORT ?? 3000));
`;

const roots: string[] = [];
/** An app folder with `files` in app/. */
function appFolder(files: Record<string, string>): string {
  const dir = appFolderOf(Object.fromEntries(Object.entries(files).map(([name, text]) => [`app/${name}`, text])), 'wsgid-start-command-');
  roots.push(dir);
  return dir;
}

/** What `npm start` in app/ answers on GET / (npm runs the script through sh, as users do). */
async function npmStartAnswer(appDir: string): Promise<unknown> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port) };
  const child = spawn('npm', ['start'], { cwd: appDir, env, stdio: 'ignore', detached: true });
  try {
    const r = await waitForHttp(`http://127.0.0.1:${port}/`, 30_000, { abort: () => (child.exitCode !== null ? 'npm start exited' : undefined) });
    return JSON.parse(r.text);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      process.kill(-child.pid!, 'SIGTERM');
      await gone;
    }
  }
}

describe('the start script, run as npm runs it, inside the worker', () => {
  let m2: Mongrel2Handle;
  before(async () => {
    m2 = await startMongrel2();
  });
  after(async () => {
    await m2?.stop();
    for (const root of roots) rmSync(root, { recursive: true, force: true });
  });

  async function served(dir: string, extra: string[] = []): Promise<{ answer: unknown; output: string }> {
    const w = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--workers=1', ...extra]), { cwd: dir, readyUrl: `${m2.baseUrl}/` });
    try {
      const r = await request(`${m2.baseUrl}/`);
      assert.equal(r.status, 200, w.output());
      return { answer: JSON.parse(r.text), output: w.output() };
    } finally {
      assert.equal(await w.stop(), 0, w.output());
    }
  }

  test('`NODE_ENV=production GREETING=hi node server.js -- --port 4000`: environment, arguments and cwd as npm start gives them', async () => {
    const dir = appFolder({
      'package.json': JSON.stringify({ name: 'reporter', scripts: { start: 'NODE_ENV=production GREETING=hi node server.js -- --port 4000' } }),
      'server.js': REPORTER,
    });
    const want = await npmStartAnswer(path.join(dir, 'app'));
    assert.deepEqual(want, { cwd: realpathSync(path.join(dir, 'app')), nodeEnv: 'production', greeting: 'hi', script: 'server.js', args: ['--', '--port', '4000'], main: true });
    const { answer } = await served(dir);
    assert.deepEqual(answer, want);
  });

  test('a bin of node_modules/.bin (`"start": "reporter-cli serve --greeting=x"`) runs as its main module, in app/', async () => {
    const dir = appFolder({
      'package.json': JSON.stringify({ name: 'uses-cli', scripts: { build: 'true', start: 'npm run build && GREETING=bin reporter-cli serve --greeting=x' } }),
      'node_modules/reporter-cli/package.json': JSON.stringify({ name: 'reporter-cli', bin: { 'reporter-cli': 'cli.js' } }),
      'node_modules/reporter-cli/cli.js': `#!/usr/bin/env node\nif (require.main === module) {${REPORTER}}\n`,
    });
    chmodSync(path.join(dir, 'app', 'node_modules', 'reporter-cli', 'cli.js'), 0o755); // as npm install leaves a bin
    mkdirSync(path.join(dir, 'app', 'node_modules', '.bin'));
    symlinkSync('../reporter-cli/cli.js', path.join(dir, 'app', 'node_modules', '.bin', 'reporter-cli'));
    const want = await npmStartAnswer(path.join(dir, 'app'));
    assert.deepEqual(want, { cwd: realpathSync(path.join(dir, 'app')), nodeEnv: process.env.NODE_ENV ?? null, greeting: 'bin', script: 'reporter-cli', args: ['serve', '--greeting=x'], main: true });
    const { answer, output } = await served(dir);
    assert.deepEqual(answer, want);
    assert.match(output, /app\/node_modules\/reporter-cli\/cli\.js \(server it started \(listen port 3000\), http\.Server; from package\.json scripts\.start `GREETING=bin reporter-cli serve --greeting=x`\)/);
  });

  test('--command wins over the start script', async () => {
    const dir = appFolder({
      'package.json': JSON.stringify({ name: 'reporter', main: 'server.js', scripts: { start: 'node server.js' } }),
      'server.js': REPORTER,
      'other.js': REPORTER,
    });
    const { answer } = await served(dir, ['--command=NODE_ENV=staging node other.js a b']);
    assert.deepEqual(answer, { cwd: realpathSync(path.join(dir, 'app')), nodeEnv: 'staging', greeting: null, script: 'other.js', args: ['a', 'b'], main: true });
  });

  test('a fastify-cli plugin without fastify installed is refused with exit code 4, naming the file', async () => {
    const dir = appFolder({
      'package.json': JSON.stringify({ name: 'plugin-only', main: 'app.js' }),
      'app.js': "'use strict'\nmodule.exports = async function (fastify, opts) {\n  fastify.get('/', async () => ({ hello: 'world' }))\n}\nmodule.exports.options = {}\n",
    });
    const h = m2.handler('app');
    const r = await runCli([`--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`, '--workers=1', '--no-daemon']);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /app\.js exports a fastify plugin `\(fastify, opts\)`.*not a request listener.*npm install fastify/);
  });
});
