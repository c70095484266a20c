/**
 * src/loaders and src/plugins: classification, detection order, errors that list what was tried,
 * listen() capture, TypeScript entries, plugins (loader discovery, filters wrapping a gateway).
 *
 * Fixture apps are written to fresh temp folders (import() caches by URL). Fixtures that need a
 * framework require it by the absolute path resolved here, so they work outside the repository.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { appFolderOf } from '../helpers/processes.js';
import express from 'express';
import connect from 'connect';
import Koa from 'koa';
import Fastify from 'fastify';
import { Hono } from 'hono';
import type { Settings } from '../../src/config/settings.js';
import type { Gateway, GatewayRequest, LoadedApp } from '../../src/gateways/types.js';
import type { ReplyChannel } from '../../src/http/reply-channel.js';
import { TestReply } from '../helpers/reply-channel.js';
import { createLogger, type Logger } from '../../src/log/logger.js';
import { AppLoadError, classify, loadApp, startListenCapture } from '../../src/loaders/index.js';
import { parseAppSpec, packageEntries, packageEntry, resolveExportsTarget } from '../../src/loaders/resolve.js';
import { parseCommand, shellWords, startCommand, startScriptFile } from '../../src/loaders/start-script.js';
import { isFastifyPlugin, parameterNames } from '../../src/loaders/fastify-plugin.js';
import { binNameOf, developmentServer } from '../../src/loaders/command.js';
import { anchorEndpoint } from '../../src/worker/app-cwd.js';
import { loadPlugins, pluginsOf } from '../../src/plugins/discover.js';
import { FilteredGateway, wrapFactory } from '../../src/plugins/filters.js';
import type { RequestFilterPlugin } from '../../src/plugins/types.js';

/** Load an app as a worker does: the loader plugins that plugins/ discovers, then loadApp. */
async function loadLikeAWorker(settings: Parameters<typeof loadApp>[0]): ReturnType<typeof loadApp> {
  return loadApp(settings, logger, await loadPlugins(settings, logger));
}
import type { Mongrel2Message } from '../../src/protocol/types.js';
import { testSettings } from '../helpers/settings.js';
import { REPO_ROOT } from '../helpers/wsgid.js';

const require = createRequire(import.meta.url);
const logger = createLogger({ fd: 2 }, 'error', 'test');
const roots: string[] = [];
after(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

/** A fresh app folder with the given files (paths relative to the app folder, e.g. 'app/server.js'). */
function appFolder(files: Record<string, string>): string {
  const root = appFolderOf(files, 'wsgid-loaders-');
  roots.push(root);
  return root;
}

function settingsFor(appPath: string, extra: Partial<Settings> = {}): Settings {
  return testSettings(appPath, extra);
}

async function load(files: Record<string, string>, extra: Partial<Settings> = {}): Promise<LoadedApp> {
  return loadLikeAWorker(settingsFor(appFolder(files), extra));
}

async function loadError(files: Record<string, string>, extra: Partial<Settings> = {}): Promise<AppLoadError> {
  try {
    await load(files, extra);
  } catch (error) {
    assert.ok(error instanceof AppLoadError, `expected AppLoadError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the load to fail');
}

/** Serve a node-kind app on a real ephemeral server and GET `path` from it. */
async function viaNode(app: unknown, urlPath = '/'): Promise<{ status: number; body: string }> {
  // A fresh listener (not `app` itself): the loader's late-listen guard fakes listen() for servers
  // whose listener is an app it serves.
  const listener = app as http.RequestListener;
  const server = http.createServer((req, res) => (app instanceof http.Server ? app.emit('request', req, res) : listener(req, res)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as net.AddressInfo;
    const response = await fetch(`http://127.0.0.1:${port}${urlPath}`);
    return { status: response.status, body: await response.text() };
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

async function viaFetch(app: unknown, urlPath = '/'): Promise<{ status: number; body: string }> {
  const target = app as { fetch(request: Request): Response | Promise<Response> };
  const response = await target.fetch(new Request(`http://localhost${urlPath}`));
  return { status: response.status, body: await response.text() };
}

const mod = (name: string): string => JSON.stringify(require.resolve(name));

describe('classify', () => {
  test('objects with fetch(): Hono and plain objects → fetch', async () => {
    const hono = new Hono().get('/', (c) => c.text('hono'));
    const a = await classify(hono);
    assert.equal(a?.kind, 'fetch');
    assert.deepEqual(await viaFetch(a!.app), { status: 200, body: 'hono' });
    const b = await classify({ fetch: () => new Response('obj') });
    assert.equal(b?.kind, 'fetch');
  });

  test('functions: Express/Connect markers → node; arity ≥ 2 → node; ≤ 1 → fetch (wrapped in {fetch})', async () => {
    const app = express().get('/', (_req, res) => res.send('express'));
    const e = await classify(app);
    assert.equal(e?.kind, 'node');
    assert.match(e!.shape, /Express/);
    assert.deepEqual(await viaNode(e!.app), { status: 200, body: 'express' });
    assert.equal((await classify(connect()))?.kind, 'node');
    assert.equal((await classify((_req: unknown, _res: unknown) => undefined))?.kind, 'node');
    const f = await classify(async () => new Response('fn'));
    assert.equal(f?.kind, 'fetch');
    assert.deepEqual(await viaFetch(f!.app), { status: 200, body: 'fn' });
    assert.equal((await classify((_request: Request) => new Response('x')))?.kind, 'fetch');
    // Default parameters do not count in Function.length: (request, context = {}) is arity 1.
    assert.equal((await classify((_request: Request, _context = {}) => new Response('x')))?.kind, 'fetch');
  });

  test('a forced kind overrides the arity heuristic', async () => {
    assert.equal((await classify((_request: Request, _ctx: unknown) => new Response('x'), 'fetch'))?.kind, 'fetch');
    assert.equal((await classify((..._args: unknown[]) => undefined, 'node'))?.kind, 'node');
  });

  test('Koa → callback(); Fastify → ready() then routing; http.Server → the server', async () => {
    const koa = new Koa();
    koa.use((ctx) => {
      ctx.body = 'koa';
    });
    const k = await classify(koa);
    assert.equal(k?.kind, 'node');
    assert.match(k!.shape, /Koa/);
    assert.deepEqual(await viaNode(k!.app), { status: 200, body: 'koa' });

    const fastify = Fastify();
    fastify.get('/', async () => 'fastify');
    const f = await classify(fastify);
    assert.equal(f?.kind, 'node');
    assert.match(f!.shape, /Fastify/);
    assert.deepEqual(await viaNode(f!.app), { status: 200, body: 'fastify' });
    await fastify.close();

    const server = http.createServer((_req, res) => res.end('server'));
    const s = await classify(server);
    assert.equal(s?.kind, 'node');
    assert.equal(s!.app, server);
  });

  test('promises are awaited; non-apps are undefined', async () => {
    assert.equal((await classify(Promise.resolve({ fetch: () => new Response('p') })))?.kind, 'fetch');
    assert.equal(await classify({ port: 3000 }), undefined);
    assert.equal(await classify('server'), undefined);
    assert.equal(await classify(undefined), undefined);
  });
});

describe('specs and package.json entries', () => {
  test('MODULE[:EXPORT]', () => {
    assert.deepEqual(parseAppSpec('server.js'), { module: 'server.js' });
    assert.deepEqual(parseAppSpec('lib/app.mjs:api.main'), { module: 'lib/app.mjs', exportName: 'api.main' });
    assert.deepEqual(parseAppSpec('@scope/pkg:handler'), { module: '@scope/pkg', exportName: 'handler' });
  });

  test('wsgid field (string or object) > main > exports', () => {
    assert.deepEqual(packageEntry({ wsgid: 'srv.js:app', main: 'x.js' }), { module: 'srv.js', exportName: 'app', field: 'wsgid' });
    assert.deepEqual(packageEntry({ wsgid: { entry: 'srv.ts', export: 'api', kind: 'fetch' } }), { module: 'srv.ts', exportName: 'api', field: 'wsgid.entry' });
    assert.deepEqual(packageEntry({ main: 'main.js', exports: './e.js' }), { module: 'main.js', field: 'main' });
    assert.deepEqual(packageEntry({ exports: { '.': { import: './e.mjs', require: './e.cjs' } } }), { module: './e.mjs', field: 'exports' });
    assert.equal(resolveExportsTarget({ node: { default: './n.js' } }), './n.js');
    assert.equal(packageEntry({ name: 'x' }), undefined);
  });
});

describe('start scripts as commands (src/loaders/start-script.ts startCommand)', () => {
  test('environment, program, runner options, file and arguments, as the shell splits them', () => {
    assert.deepEqual(parseCommand('NODE_ENV=production node server.js'), {
      env: { NODE_ENV: 'production' }, program: 'node', runner: true, nodeOptions: [], file: 'server.js', args: [], text: 'NODE_ENV=production node server.js',
    });
    const withOptions = parseCommand('cross-env PORT=4000 node -r dotenv/config --env-file=.env dist/main.js -- --flag');
    assert.deepEqual([withOptions?.env, withOptions?.nodeOptions, withOptions?.file, withOptions?.args], [{ PORT: '4000' }, ['-r', 'dotenv/config', '--env-file=.env'], 'dist/main.js', ['--', '--flag']]);
    assert.deepEqual(parseCommand('node -- server.mjs --port 3000')?.args, ['--port', '3000']);
    const next = parseCommand('next start -p 4000');
    assert.deepEqual([next?.program, next?.runner, next?.args, next?.file], ['next', false, ['start', '-p', '4000'], undefined]);
    assert.deepEqual(parseCommand("react-router-serve './build/server/index.js'")?.args, ['./build/server/index.js']);
    // Nothing wsgid can run in-process: shell expansion, redirection, inline code.
    for (const text of ['node $ENTRY', 'next start > log.txt', 'node -e "1"', '', 'echo hi']) assert.equal(parseCommand(text), undefined, text);
  });

  test('the last command that is a program, following npm run / yarn into scripts', () => {
    const scripts = { build: 'next build', serve: 'next start', start: 'npm run serve', both: 'npm run build && yarn serve', loop: 'npm run loop' };
    assert.equal(startCommand('npm run build && next start')?.program, 'next');
    assert.equal(startCommand('node dist/a.js; echo done')?.file, 'dist/a.js');
    assert.deepEqual(startCommand('npm run serve', scripts)?.args, ['start']);
    assert.deepEqual(startCommand(scripts.both, scripts)?.args, ['start']);
    assert.equal(startCommand('npm run loop', scripts), undefined);
    assert.equal(startCommand('npm run missing', scripts), undefined);
  });
});

describe('commands that cannot be served (src/loaders/command.ts)', () => {
  test('development servers are named as such; production commands are not', () => {
    for (const text of ['next', 'next dev', 'next dev --turbopack', 'nest start', 'nuxt dev', 'vite', 'react-router dev']) assert.ok(developmentServer(parseCommand(text)!), text);
    for (const text of ['next start', 'next start -p 3000', 'nest build', 'react-router-serve build/server/index.js', 'node next.js', 'fastify start app.js']) assert.equal(developmentServer(parseCommand(text)!), undefined, text);
  });

  test('--wsgi-app naming a package\'s bin (next/dist/bin/next, which alone runs `next dev`) is refused with the command to give', async () => {
    const error = await loadError(
      {
        'app/node_modules/next/package.json': JSON.stringify({ name: 'next', bin: { next: './dist/bin/next' } }),
        'app/node_modules/next/dist/bin/next': '#!/usr/bin/env node\nthrow new Error("must not run")\n',
        'app/node_modules/next/dist/esm/package.json': JSON.stringify({ type: 'module' }),
      },
      { wsgiApp: 'node_modules/next/dist/bin/next' },
    );
    assert.match(error.message, /is the `next` command of a package, not an app module: give the command to run, e.g. --command="next start"/);
    // A start script that runs a development server is not run: the error says so, and other entries still count.
    const dev = await loadError({ 'app/package.json': JSON.stringify({ scripts: { start: 'next dev --turbopack' } }) });
    assert.match(dev.message, /"scripts\.start": `next dev --turbopack` is a development server \(it compiles on request and writes tsconfig\.json/);
    const beside = await load({ 'app/package.json': JSON.stringify({ scripts: { start: 'vite' } }), 'app/server.mjs': 'export default { fetch: () => new Response("ok") };\n' });
    assert.match(beside.description, /app\/server\.mjs/);
    await assert.rejects(load({ 'app/package.json': '{}', 'app/server.mjs': '' }, { command: 'next dev' }), /--command `next dev` is a development server/);
    const root = appFolder({ 'app/node_modules/@scope/tool/package.json': JSON.stringify({ name: '@scope/tool', bin: 'cli.js' }), 'app/node_modules/@scope/tool/cli.js': '' });
    assert.equal(binNameOf(path.join(root, 'app/node_modules/@scope/tool/cli.js')), 'tool');
    assert.equal(binNameOf(path.join(root, 'app/node_modules/@scope/tool/package.json')), undefined);
  });
});

describe('fastify-cli plugins (src/loaders/fastify-plugin.ts)', () => {
  test("create-fastify's app.js is a plugin; (req, res) listeners and Express middleware are not", () => {
    const plugin = async function (fastify: unknown, opts: unknown) {
      void fastify, opts;
    };
    assert.deepEqual(parameterNames(plugin), ['fastify', 'opts']);
    assert.ok(isFastifyPlugin(plugin));
    assert.ok(isFastifyPlugin(function (instance: unknown, options: unknown, done: () => void) {
      void instance, options;
      done();
    }));
    const marked = Object.assign((a: unknown, b: unknown) => void [a, b], { [Symbol.for('skip-override')]: true });
    assert.ok(isFastifyPlugin(marked));
    for (const listener of [(req: unknown, res: unknown) => void [req, res], async (request: unknown, reply: unknown) => void [request, reply], (req: unknown, res: unknown, next: unknown) => void [req, res, next]]) {
      assert.equal(isFastifyPlugin(listener), false, String(listener));
    }
  });

  test('served through the fastify next to it, as `fastify start` serves it (decorators reach the root)', async () => {
    const fastifyEntry = createRequire(import.meta.url).resolve('fastify');
    const app = await load({
      'app/package.json': JSON.stringify({ main: 'app.js' }),
      'app/node_modules/fastify/index.js': `module.exports = require(${JSON.stringify(fastifyEntry)});\n`,
      'app/app.js':
        "'use strict'\nmodule.exports = async function (fastify, opts) {\n  fastify.decorate('greeting', 'hi')\n  fastify.register(async (child) => { child.get('/', async () => ({ greeting: child.greeting })) })\n}\nmodule.exports.options = {}\n",
    });
    assert.equal(app.kind, 'node');
    assert.match(app.description, /fastify-cli plugin/);
    assert.deepEqual(await viaNode(app.app), { status: 200, body: '{"greeting":"hi"}' });
  });
});

describe('the worker runs in app/ (src/worker/app-cwd.ts)', () => {
  test('relative ipc:// endpoints are anchored to the app folder before the cwd moves', () => {
    assert.equal(anchorEndpoint('ipc://run/m2.sock', '/srv/site'), 'ipc:///srv/site/run/m2.sock');
    assert.equal(anchorEndpoint('ipc://run/m2.sock', '/'), 'ipc:///run/m2.sock');
    assert.equal(anchorEndpoint('ipc:///tmp/m2.sock', '/srv/site'), 'ipc:///tmp/m2.sock');
    assert.equal(anchorEndpoint('tcp://127.0.0.1:9997', '/srv/site'), 'tcp://127.0.0.1:9997');
  });
});

describe('package.json start scripts', () => {
  test('the file a start script runs, as npm would run it', () => {
    const cases: Array<[string, string | undefined]> = [
      ['node dist/server.js', 'dist/server.js'],
      ['node ./bin/www', './bin/www'],
      ['tsx src/index.ts', 'src/index.ts'],
      ['tsx watch src/index.ts', 'src/index.ts'],
      ['NODE_ENV=production node --enable-source-maps dist/index.js', 'dist/index.js'],
      ['cross-env NODE_ENV=production PORT=3000 node build/index.js', 'build/index.js'],
      ['node -r dotenv/config --env-file .env dist/main.js', 'dist/main.js'],
      ['node --require=dotenv/config --import tsx src/app.ts', 'src/app.ts'],
      ['npm run build && node dist/index.js', 'dist/index.js'],
      ['node dist/a.js; echo done', 'dist/a.js'],
      ['ts-node -P tsconfig.json src/server.ts', 'src/server.ts'],
      ['nodemon server.js', 'server.js'],
      ['/usr/bin/node "my app/server.js"', 'my app/server.js'],
      ['exec node -- server.mjs --port 3000', 'server.mjs'],
      ['node .', '.'],
      // No file: frameworks' own CLIs, inline code, shell expansion.
      ['nest start', undefined],
      ['next start', undefined],
      ['node -e "require(\'./x\')"', undefined],
      ['node $ENTRY', undefined],
      ['node dist/*.js', undefined],
      ['', undefined],
    ];
    for (const [script, file] of cases) assert.equal(startScriptFile(script), file, script);
    assert.deepEqual(shellWords(`a 'b c' "d \\"e\\"" f\\ g`), ['a', 'b c', 'd "e"', 'f g']);
  });

  test('entries in order: wsgid, main, exports, module, start script, start:prod script', () => {
    const pkg = { wsgid: 'w.js', main: 'm.js', exports: './e.js', module: 'esm.js', scripts: { start: 'node s.js', dev: 'tsx watch d.ts' } };
    assert.deepEqual(packageEntries(pkg).map((e) => [e.field, e.module]), [
      ['wsgid', 'w.js'], ['main', 'm.js'], ['exports', './e.js'], ['module', 'esm.js'], ['scripts.start', 's.js'],
    ]);
    assert.deepEqual(packageEntry({ module: 'esm.js', scripts: { start: 'node s.js' } }), { module: 'esm.js', field: 'module' });
    assert.equal(packageEntry({ scripts: { start: 'node s.js' } }), undefined, "a folder's entry is never its start script");
    // NestJS: `start` runs its CLI, `start:prod` the build.
    assert.deepEqual(packageEntries({ scripts: { start: 'nest start', 'start:dev': 'nest start --watch', 'start:prod': 'node dist/main' } }), [
      { module: 'dist/main', field: 'scripts.start:prod' },
    ]);
  });
});

describe('detection', () => {
  const fetchApp = (text: string): string => `export default { fetch: () => new Response(${JSON.stringify(text)}) };\n`;

  test('package.json "wsgid" beats "main" beats conventional names', async () => {
    const files = {
      'app/package.json': JSON.stringify({ type: 'module', wsgid: 'entry.js', main: 'main-field.js' }),
      'app/entry.js': fetchApp('wsgid-field'),
      'app/main-field.js': fetchApp('main-field'),
      'app/server.js': fetchApp('server'),
    };
    const a = await load(files);
    assert.deepEqual(await viaFetch(a.app), { status: 200, body: 'wsgid-field' });
    assert.match(a.description, /entry\.js.*package\.json wsgid/);

    const b = await load({ ...files, 'app/package.json': JSON.stringify({ type: 'module', main: 'main-field.js' }) });
    assert.deepEqual(await viaFetch(b.app), { status: 200, body: 'main-field' });
  });

  test('a package.json main that does not exist falls through to conventional names', async () => {
    const a = await load({ 'app/package.json': JSON.stringify({ type: 'module', main: 'index.js' }), 'app/app.mjs': fetchApp('app.mjs') });
    assert.deepEqual(await viaFetch(a.app), { status: 200, body: 'app.mjs' });
  });

  test('conventional order: server, app, index, main; .js before .mjs before .cjs before .ts', async () => {
    const all = { 'app/server.mjs': fetchApp('server.mjs'), 'app/app.js': fetchApp('app.js'), 'app/index.js': fetchApp('index.js') };
    assert.deepEqual(await viaFetch((await load(all)).app), { status: 200, body: 'server.mjs' });
    const noServer = { 'app/app.mjs': fetchApp('app.mjs'), 'app/app.js': fetchApp('app.js'), 'app/index.js': fetchApp('index.js') };
    // .js in a folder with no package.json: ESM or CJS by the nearest package.json; write ESM-safe code.
    assert.deepEqual(await viaFetch((await load({ 'app/package.json': '{"type":"module"}', ...noServer })).app), { status: 200, body: 'app.js' });
    const main = { 'app/main.cjs': 'module.exports = (req, res) => res.end("main.cjs");\n' };
    const m = await load(main);
    assert.equal(m.kind, 'node');
    assert.deepEqual(await viaNode(m.app), { status: 200, body: 'main.cjs' });
  });

  test('named exports when there is no default: app, handler, fetch (forces fetch)', async () => {
    const a = await load({ 'app/server.mjs': 'export const handler = (req, res) => res.end("handler");\n' });
    assert.equal(a.kind, 'node');
    assert.deepEqual(await viaNode(a.app), { status: 200, body: 'handler' });
    // fetch(request, env) has arity 2 but the name forces fetch.
    const b = await load({ 'app/server.mjs': 'export function fetch(request, env) { return new Response("named fetch"); }\n' });
    assert.equal(b.kind, 'fetch');
    assert.deepEqual(await viaFetch(b.app), { status: 200, body: 'named fetch' });
    const c = await load({ 'app/server.cjs': `const express = require(${mod('express')});\nexports.app = express().get('/', (q, s) => s.send('cjs app'));\n` });
    assert.equal(c.kind, 'node');
    assert.match(c.description, /export "app"|module\.exports\.app/);
    assert.deepEqual(await viaNode(c.app), { status: 200, body: 'cjs app' });
  });

  test('CommonJS compiled from ESM (__esModule + exports.default)', async () => {
    const a = await load({
      'app/index.cjs': 'Object.defineProperty(exports, "__esModule", { value: true });\nexports.default = { fetch: () => new Response("interop") };\n',
    });
    assert.equal(a.kind, 'fetch');
    assert.deepEqual(await viaFetch(a.app), { status: 200, body: 'interop' });
  });

  test('package.json wsgid.kind forces the kind of a function export', async () => {
    const a = await load({
      'app/package.json': JSON.stringify({ type: 'module', wsgid: { entry: 'server.js', kind: 'fetch' } }),
      'app/server.js': 'export default (request, context) => new Response("forced fetch");\n',
    });
    assert.equal(a.kind, 'fetch');
  });

  test('--wsgi-app: file without extension, dotted export, and a useful error for a missing export', async () => {
    const root = appFolder({ 'app/lib/api.mjs': 'export const api = { v1: { fetch: () => new Response("v1") } };\nexport const other = 1;\n' });
    const a = await loadLikeAWorker(settingsFor(root, { wsgiApp: 'lib/api:api.v1' }));
    assert.deepEqual(await viaFetch(a.app), { status: 200, body: 'v1' });
    await assert.rejects(loadLikeAWorker(settingsFor(root, { wsgiApp: 'lib/api.mjs:nope' })), /has no export "nope" \(exports: api, other\)/);
    await assert.rejects(loadLikeAWorker(settingsFor(root, { wsgiApp: 'lib/api.mjs:other' })), /is not an app \(got number\)/);
  });

  test('--wsgi-app: an installed package resolved from app/node_modules (ESM-only exports)', async () => {
    const root = appFolder({
      'app/node_modules/@acme/site/package.json': JSON.stringify({ name: '@acme/site', type: 'module', exports: { '.': { import: './dist/site.js' } } }),
      'app/node_modules/@acme/site/dist/site.js': 'export default { fetch: () => new Response("from package") };\n',
    });
    const a = await loadLikeAWorker(settingsFor(root, { wsgiApp: '@acme/site' }));
    assert.deepEqual(await viaFetch(a.app), { status: 200, body: 'from package' });
  });

  test('the app’s own node_modules are used by its imports (ESM and CJS)', async () => {
    const root = appFolder({
      'app/node_modules/greeting/package.json': JSON.stringify({ name: 'greeting', main: 'index.js' }),
      'app/node_modules/greeting/index.js': 'module.exports = "hello from app/node_modules";\n',
      'app/server.mjs': 'import greeting from "greeting";\nexport default { fetch: () => new Response(greeting) };\n',
    });
    const a = await loadLikeAWorker(settingsFor(root));
    assert.deepEqual(await viaFetch(a.app), { status: 200, body: 'hello from app/node_modules' });
  });

  test('nothing found: the error lists what was tried and suggests --wsgi-app', async () => {
    const error = await loadError({ 'app/package.json': JSON.stringify({ main: 'missing.js' }), 'app/README': 'hi' });
    assert.match(error.message, /--wsgi-app=MODULE\[:EXPORT\]/);
    assert.match(error.message, /package\.json "main": missing\.js \(not found\)/);
    assert.match(error.message, /app\/\{server,app,index,main\}/);
    assert.match(error.message, /loader plugins in plugins: none/);
    assert.ok(error.tried.length >= 4);
  });

  test('an entry that exports nothing servable and never listens fails after the listen wait', async () => {
    const error = await loadError({ 'app/server.mjs': 'export const port = 3000;\n' }, { listenWaitMs: 100 });
    assert.match(error.message, /exports nothing wsgid can serve/);
    assert.match(error.message, /listen\(\) call on an HTTP server within 100 ms/);
  });

  test('an entry that throws on import: the error names the file and keeps the cause', async () => {
    await assert.rejects(load({ 'app/server.mjs': 'throw new Error("boom at import");\n' }), (error: Error) => {
      assert.match(error.message, /failed to import app\/server\.mjs .*boom at import/);
      return true;
    });
  });
});

/** A fresh app folder with test/fixtures/layouts/NAME/app, app/node_modules linking to the repository's. */
function layoutFolder(name: string): string {
  const root = mkdtempSync(path.join(os.tmpdir(), `wsgid-layout-${name}-`));
  roots.push(root);
  cpSync(path.join(REPO_ROOT, 'test', 'fixtures', 'layouts', name, 'app'), path.join(root, 'app'), { recursive: true });
  symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(root, 'app', 'node_modules'), 'dir');
  return root;
}

interface ChildLoad {
  kind: string;
  description: string;
  status: number;
  body: string;
}

/** Load the app of `appPath` in a fresh process, as a worker does (see test/helpers/load-app-child.ts). */
function loadInChild(appPath: string, urlPath = '/'): Promise<ChildLoad> {
  const script = path.join(REPO_ROOT, 'dist', 'test', 'helpers', 'load-app-child.js');
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [script, appPath, urlPath], { timeout: 60_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${error.message}\n${stderr}`));
      else resolve(JSON.parse(stdout.trim().split('\n').pop()!) as ChildLoad);
    });
  });
}

describe("today's layouts, as their starters make them (test/fixtures/layouts)", () => {
  test("create-hono's nodejs template: src/index.ts calling serve(), start script naming an unbuilt dist/", async () => {
    const r = await loadInChild(layoutFolder('hono-node'));
    assert.equal(r.kind, 'node');
    assert.match(r.description, /^app\/src\/index\.ts \(server it started \(listen port 3000\), http\.Server; from conventional entry name\)$/);
    assert.deepEqual([r.status, r.body], [200, 'Hello from the create-hono layout!']);
  });

  test('a Hono JSX app: src/index.tsx with export default app, tsconfig jsxImportSource hono/jsx', async () => {
    const r = await loadInChild(layoutFolder('hono-jsx'));
    assert.equal(r.kind, 'fetch');
    assert.match(r.description, /^app\/src\/index\.tsx \(default export, object with fetch\(\); from conventional entry name\)$/);
    assert.equal(r.status, 200);
    assert.equal(r.body, '<html><body><h1>Hello Hono JSX!</h1><ul><li>tsx</li><li>wsgid</li></ul></body></html>');
  });

  test('a .jsx entry (index.jsx)', async () => {
    const r = await loadInChild(layoutFolder('jsx-entry'));
    assert.match(r.description, /^app\/index\.jsx \(default export/);
    assert.deepEqual([r.status, r.body], [200, '<p class="greeting">plain .jsx entry</p>']);
  });

  test("express-generator: \"start\": \"node ./bin/www\" (a file without extension) beats app.js", async () => {
    const r = await loadInChild(layoutFolder('express-generator'));
    assert.equal(r.kind, 'node');
    assert.match(r.description, /^app\/bin\/www \(server it started \(listen port 3000\), http\.Server; from package\.json scripts\.start\)$/);
    assert.deepEqual([r.status, r.body], [200, 'express-generator layout via bin/www']);
  });

  test('a start script naming the build output wins over src/', async () => {
    const r = await loadInChild(layoutFolder('built-start'));
    assert.match(r.description, /^app\/build\/server\.js \(.*from package\.json scripts\.start\)$/);
    assert.equal(r.body, 'compiled build/server.js');
  });

  test('package.json "module" field', async () => {
    const a = await loadLikeAWorker(settingsFor(layoutFolder('module-field')));
    assert.match(a.description, /^app\/lib\/app\.mjs \(.*from package\.json module\)$/);
    assert.deepEqual(await viaFetch(a.app), { status: 200, body: 'from the module field' });
  });

  test('a main that does not exist falls through to module; app/ names beat app/src/ names', async () => {
    const fetchApp = (text: string): string => `export default { fetch: () => new Response(${JSON.stringify(text)}) };\n`;
    const a = await load({ 'app/package.json': JSON.stringify({ type: 'module', main: 'index.js', module: 'esm/entry.js' }), 'app/esm/entry.js': fetchApp('module') });
    assert.deepEqual(await viaFetch(a.app), { status: 200, body: 'module' });
    const b = await load({ 'app/package.json': '{"type":"module"}', 'app/main.js': fetchApp('root main'), 'app/src/server.js': fetchApp('src server') });
    assert.deepEqual(await viaFetch(b.app), { status: 200, body: 'root main' });
    const c = await load({ 'app/package.json': '{"type":"module"}', 'app/src/main.js': fetchApp('src main'), 'app/src/index.js': fetchApp('src index') });
    assert.deepEqual(await viaFetch(c.app), { status: 200, body: 'src index' });
    const error = await loadError({ 'app/package.json': JSON.stringify({ scripts: { start: 'node dist/server.js' } }) });
    assert.match(error.message, /package\.json "scripts\.start": dist\/server\.js \(not found\)/);
    assert.match(error.message, /app\/src\/\{server,app,index,main\}\{\.js,.*\.tsx,\.jsx\}: none exists/);
  });
});

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('listen() capture', () => {
  test('an app that listens at import is captured: callback, listening, address(), nothing bound', async () => {
    const port = await freePort();
    const a = await load({
      'app/server.mjs': `import http from 'node:http';
export const events = [];
const server = http.createServer((req, res) => res.end('captured'));
server.on('listening', () => events.push('listening event'));
server.listen(${port}, '127.0.0.1', () => events.push('callback ' + JSON.stringify(server.address()) + ' ' + server.listening));
`,
    });
    assert.equal(a.kind, 'node');
    assert.ok(a.app instanceof http.Server);
    assert.match(a.description, new RegExp(`server it started \\(listen port ${port} on 127\\.0\\.0\\.1\\)`));
    assert.deepEqual(await viaNode(a.app), { status: 200, body: 'captured' });
    // The port was never bound: we can bind it ourselves.
    const probe = net.createServer();
    await new Promise<void>((resolve, reject) => probe.once('error', reject).listen(port, '127.0.0.1', resolve));
    await new Promise((resolve) => probe.close(resolve));
    // Capture is over: a new HTTP server binds for real again.
    const real = http.createServer((_req, res) => res.end('real'));
    await new Promise<void>((resolve) => real.listen(0, '127.0.0.1', resolve));
    const realPort = (real.address() as net.AddressInfo).port;
    assert.equal(await (await fetch(`http://127.0.0.1:${realPort}/`, { headers: { connection: 'close' } })).text(), 'real');
    await new Promise((resolve) => real.close(resolve));
    // close(cb) works on the captured server (apps' shutdown code).
    await new Promise<void>((resolve, reject) => (a.app as http.Server).close((error) => (error ? reject(error) : resolve())));
  });

  test('the callback runs and address() reports the requested port', async () => {
    const root = appFolder({
      'app/server.cjs': `const http = require('node:http');
const server = http.createServer((req, res) => res.end(JSON.stringify(global.__wsgidTestSeen)));
server.listen(4321, () => { global.__wsgidTestSeen = { address: server.address(), listening: server.listening }; });
`,
    });
    const a = await loadLikeAWorker(settingsFor(root));
    await new Promise((resolve) => setImmediate(resolve));
    const seen = JSON.parse((await viaNode(a.app)).body) as { address: net.AddressInfo; listening: boolean };
    assert.equal(seen.address.port, 4321);
    assert.equal(seen.listening, true);
  });

  test('first HTTP server wins; a second one with another listener (metrics) binds for real', async () => {
    const metricsPort = await freePort();
    const a = await load({
      'app/server.mjs': `import http from 'node:http';
http.createServer((req, res) => res.end('main')).listen(3000);
globalThis.__wsgidMetrics = http.createServer((req, res) => res.end('metrics')).listen(${metricsPort}, '127.0.0.1');
`,
    });
    assert.deepEqual(await viaNode(a.app), { status: 200, body: 'main' });
    const response = await fetch(`http://127.0.0.1:${metricsPort}/`, { headers: { connection: 'close' } });
    assert.equal(await response.text(), 'metrics');
    const metrics = (globalThis as { __wsgidMetrics?: http.Server }).__wsgidMetrics!;
    metrics.closeAllConnections();
    await new Promise((resolve) => metrics.close(resolve));
  });

  test('a listen() after the import (e.g. after connecting to a database) is still captured', async () => {
    const a = await load({
      'app/server.mjs': `import http from 'node:http';
setTimeout(() => http.createServer((req, res) => res.end('late')).listen(3000), 50);
`,
    });
    assert.deepEqual(await viaNode(a.app), { status: 200, body: 'late' });
  });

  test('Express app.listen() at import (CJS, unchanged app code)', async () => {
    const a = await load({
      'app/package.json': JSON.stringify({ type: 'commonjs', main: 'server.js' }),
      'app/server.js': `const express = require(${mod('express')});
const app = express();
app.get('/', (req, res) => res.send('express listened'));
app.listen(process.env.PORT || 3000);
`,
    });
    assert.equal(a.kind, 'node');
    assert.deepEqual(await viaNode(a.app), { status: 200, body: 'express listened' });
  });

  test('an exported Express app that listens later (after the import) does not bind', async () => {
    const port = await freePort();
    const a = await load({
      'app/server.cjs': `const express = require(${mod('express')});
const app = express().get('/', (req, res) => res.send('exported'));
setTimeout(() => { globalThis.__wsgidLate = app.listen(${port}, '127.0.0.1'); }, 30);
module.exports = app;
`,
    });
    assert.match(a.description, /default export, Express/);
    await new Promise((resolve) => setTimeout(resolve, 80));
    const late = (globalThis as { __wsgidLate?: http.Server }).__wsgidLate;
    assert.ok(late?.listening, 'the late listen() looked successful to the app');
    const probe = net.createServer();
    await new Promise<void>((resolve, reject) => probe.once('error', reject).listen(port, '127.0.0.1', resolve));
    await new Promise((resolve) => probe.close(resolve));
  });

  test('capture is exclusive and restores listen', () => {
    const original = net.Server.prototype.listen;
    const capture = startListenCapture();
    assert.notEqual(net.Server.prototype.listen, original);
    assert.throws(() => startListenCapture(), /already active/);
    capture.stop();
    capture.stop();
    assert.equal(net.Server.prototype.listen, original);
  });
});

describe('TypeScript entries', () => {
  test('ESM .ts (enum, class, ./x.js → x.ts) and a CommonJS .cts', async () => {
    const a = await load({
      'app/package.json': JSON.stringify({ type: 'module' }),
      'app/util.ts': 'export enum Kind { A = "typed" }\nexport class Box { constructor(private readonly v: Kind) {} get value(): string { return this.v; } }\n',
      'app/server.ts': 'import { Box, Kind } from "./util.js";\nconst box: Box = new Box(Kind.A);\nexport default { fetch: (_r: Request): Response => new Response(box.value) };\n',
    });
    assert.equal(a.kind, 'fetch');
    assert.deepEqual(await viaFetch(a.app), { status: 200, body: 'typed' });

    const b = await load({
      'app/helper.cts': 'export const word: string = "cts";\n',
      'app/main.cts': 'import type { IncomingMessage, ServerResponse } from "node:http";\nconst { word } = require("./helper.cts");\nmodule.exports = (req: IncomingMessage, res: ServerResponse): void => { res.end(word); };\n',
    });
    assert.equal(b.kind, 'node');
    assert.deepEqual(await viaNode(b.app), { status: 200, body: 'cts' });
  });
});

describe('plugins', () => {
  const loaderPlugin = (name: string, text: string): string => `export default {
  name: ${JSON.stringify(name)},
  canLoad(appDir) { return true; },
  load(appDir, settings) { return { kind: 'fetch', app: { fetch: () => new Response(${JSON.stringify(text)}) }, description: ${JSON.stringify(name)} }; },
};
`;

  test('a loader plugin in plugins/ is consulted before built-in detection', async () => {
    const a = await load({ 'plugins/mine.mjs': loaderPlugin('mine', 'from plugin'), 'app/server.mjs': 'export default { fetch: () => new Response("builtin") };\n' });
    assert.deepEqual(await viaFetch(a.app), { status: 200, body: 'from plugin' });
    assert.match(a.description, /loader plugin "mine"/);
  });

  test('--loader-dir folders (relative to the app folder) are searched after plugins/', async () => {
    const a = await load(
      {
        'plugins/no.mjs': 'export default { name: "no", canLoad: () => false, load() { throw new Error("unreachable"); } };\n',
        'extra/yes.mjs': loaderPlugin('yes', 'from loader-dir'),
      },
      { loaderDir: ['extra'] },
    );
    assert.deepEqual(await viaFetch(a.app), { status: 200, body: 'from loader-dir' });
  });

  test('--wsgi-app wins over loader plugins', async () => {
    const a = await load(
      { 'plugins/mine.mjs': loaderPlugin('mine', 'from plugin'), 'app/explicit.mjs': 'export default { fetch: () => new Response("explicit") };\n' },
      { wsgiApp: 'explicit.mjs' },
    );
    assert.deepEqual(await viaFetch(a.app), { status: 200, body: 'explicit' });
  });

  test('pluginsOf: by shape, from default, arrays and named exports', () => {
    const loader = { name: 'l', canLoad: () => true, load: () => ({ kind: 'fetch', app: {}, description: '' }) };
    const filter = { name: 'f', before: () => undefined };
    const command = { command: 'c', description: 'd', run: () => 0 };
    assert.deepEqual(pluginsOf({ default: [loader, filter], command, other: 42 }), [loader, filter, command]);
    assert.deepEqual(pluginsOf({ default: { loader, filter } }), [loader, filter]);
  });
});

describe('request filters wrap any gateway', () => {
  function message(uri: string, headers: Record<string, string> = {}): Mongrel2Message {
    const [p, q] = uri.split('?');
    return {
      kind: 'request',
      sender: 's',
      connId: 1,
      path: p!,
      headers: { METHOD: 'GET', VERSION: 'HTTP/1.1', URI: uri, PATH: p!, ...(q ? { QUERY: q } : {}), host: 'x', ...headers },
      body: Buffer.alloc(0),
    };
  }

  /** A gateway that echoes the URI and a header, writing its head in two pieces. */
  const echoGateway = (log: Logger): Gateway => ({
    handle(request: GatewayRequest, reply: ReplyChannel) {
      const uri = String(request.message.headers['URI']);
      if (uri === '/fail') {
        // The gateway contract: report the app's error on the request, besides logging it.
        const error = new Error('app failed');
        request.reportError?.(error);
        log.error('app error', { error });
        reply.write('HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n');
        reply.end();
        return;
      }
      const body = `${request.message.headers['METHOD']} ${uri} ${String(request.message.headers['x-user'] ?? '-')}`;
      reply.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n');
      reply.write(`Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: ${body.length}\r\n\r\n`);
      reply.end(body);
    },
    close: () => Promise.resolve(),
  });
  const echo = echoGateway(logger);

  const context = { settings: settingsFor('/nonexistent'), logger };

  test('before rewrites the request; after changes status and headers; order is middleware-like', async () => {
    const order: string[] = [];
    const filters: RequestFilterPlugin[] = [
      {
        name: 'one',
        before(request) {
          order.push('before one');
          request.url = request.url.replace('/old/', '/new/');
          request.headers['x-user'] = 'alice';
        },
        after(info) {
          order.push('after one');
          info.headers['x-one'] = 'yes';
        },
      },
      {
        name: 'two',
        before() {
          order.push('before two');
        },
        async after(info) {
          order.push('after two');
          await new Promise((resolve) => setTimeout(resolve, 5));
          info.status = 203;
        },
      },
    ];
    const gateway = new FilteredGateway(echo, filters, context, 'test');
    const reply = new TestReply();
    await gateway.handle({ message: message('/old/x?q=1'), signal: new AbortController().signal }, reply);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const text = reply.text();
    assert.match(text, /^HTTP\/1\.1 203 Non-Authoritative Information\r\n/);
    assert.match(text, /Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n/);
    assert.match(text, /x-one: yes\r\n\r\n/);
    assert.ok(text.endsWith('GET /new/x?q=1 alice'), text);
    assert.ok(reply.ended);
    assert.deepEqual(order, ['before one', 'before two', 'after two', 'after one']);
  });

  test('before may answer without calling the app; after sees the app error', async () => {
    let seenError: unknown;
    const filters: RequestFilterPlugin[] = [
      {
        name: 'guard',
        before: (request) => (request.url === '/blocked' ? { status: 403, body: 'no\n' } : undefined),
        after: (info) => {
          seenError = info.error;
        },
      },
    ];
    const create = wrapFactory((_app, options) => echoGateway(options.logger), filters, context);
    const gateway = await create({ kind: 'test', app: null, description: '' }, { logger, version: 'v' });
    const blocked = new TestReply();
    await gateway.handle({ message: message('/blocked'), signal: new AbortController().signal }, blocked);
    assert.match(blocked.text(), /^HTTP\/1\.1 403 Forbidden\r\n[^]*X-Wsgid: v\r\n[^]*\r\n\r\nno\n$/);

    const failed = new TestReply();
    await gateway.handle({ message: message('/fail'), signal: new AbortController().signal }, failed);
    assert.match(failed.text(), /^HTTP\/1\.1 500 /);
    assert.ok(seenError instanceof Error && seenError.message === 'app failed');
  });

  test('no filters: the factory is returned unchanged', () => {
    const factory = (): Gateway => echo;
    assert.equal(wrapFactory(factory, [], context), factory);
  });
});
