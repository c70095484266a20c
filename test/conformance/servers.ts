/**
 * The two sides of a conformance run: the app under its reference server (in this process for
 * JavaScript apps, gunicorn for the WSGI app) and the same app under wsgid behind one real mongrel2,
 * in four variants: --workers=0 and --workers=1, each on a JSON and a tnetstring handler.
 */
import { cp, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { freePort, startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { REPO_ROOT, startWsgid, wsgidArgs, type WsgidProcess } from '../helpers/wsgid.js';
import { startPythonServer } from '../helpers/python-server.js';
import { INLINE_LIMIT } from './cases.js';

export const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'conformance');

export interface Reference {
  port: number;
  stop(): Promise<void>;
}

export interface Variant {
  name: string;
  /** The route prefix that reaches this variant's handler. */
  prefix: string;
}

export interface UnderTest {
  port: number;
  variants: Variant[];
  diagnostics(): string;
  stop(): Promise<number[]>;
}

export const VARIANTS = [
  { name: 'workers=0 json', prefix: '/j0', workers: 0, protocol: 'json' as const },
  { name: 'workers=0 tnetstring', prefix: '/t0', workers: 0, protocol: 'tnetstring' as const },
  { name: 'workers=1 json', prefix: '/j1', workers: 1, protocol: 'json' as const },
  { name: 'workers=1 tnetstring', prefix: '/t1', workers: 1, protocol: 'tnetstring' as const },
];

function listening(server: http.Server | net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

function closing(server: http.Server): Promise<void> {
  server.closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}

async function importFixture(file: string, from = FIXTURES): Promise<{ default: unknown }> {
  return import(pathToFileURL(path.join(from, file)).href) as Promise<{ default: unknown }>;
}

/** The fetch app on @hono/node-server (the reference Hono's own docs give for Node). */
export async function honoReference(file: string, from = FIXTURES): Promise<Reference> {
  const { serve } = await import('@hono/node-server');
  const app = (await importFixture(file, from)).default as { fetch: (request: Request) => Response | Promise<Response> };
  const port = await freePort();
  const server = await new Promise<http.Server>((resolve) => {
    const created = serve({ fetch: app.fetch, port, hostname: '127.0.0.1' }, () => resolve(created as http.Server));
  });
  return { port, stop: () => closing(server) };
}

/** A Node app (http.Server, Express, Koa or Fastify) on node:http itself. */
export async function nodeReference(file: string, from = FIXTURES): Promise<Reference> {
  const app = (await importFixture(file, from)).default;
  let server: http.Server;
  if (app instanceof http.Server) {
    server = app;
  } else if (typeof app === 'function') {
    server = http.createServer(app as http.RequestListener);
  } else if (app !== null && typeof app === 'object' && 'callback' in app && typeof app.callback === 'function') {
    server = http.createServer((app as { callback(): http.RequestListener }).callback()); // Koa
  } else if (app !== null && typeof app === 'object' && 'routing' in app && 'ready' in app) {
    const fastify = app as { ready(): Promise<void>; routing: http.RequestListener };
    await fastify.ready();
    server = http.createServer((req, res) => fastify.routing(req, res));
  } else {
    throw new Error(`${file}: not a Node app`);
  }
  const port = await listening(server);
  return { port, stop: () => closing(server) };
}

/** The WSGI app under gunicorn (Debian's python3-gunicorn, threaded worker for keep-alive). */
export function gunicornReference(module: string, from = FIXTURES): Promise<Reference> {
  return startPythonServer(
    'gunicorn',
    (port) => ['--worker-class=gthread', '--threads=8', '--workers=1', `--bind=127.0.0.1:${port}`, '--log-level=warning', module],
    from,
  );
}

/** An ASGI app under uvicorn (Debian's python3-uvicorn). */
export function uvicornReference(module: string, from: string): Promise<Reference> {
  return startPythonServer('uvicorn', (port) => ['--host=127.0.0.1', `--port=${port}`, '--log-level=warning', '--no-access-log', module], from);
}

/** The same app under wsgid in each variant, behind one mongrel2. `files` (in `from`) are copied into app/. */
export async function underWsgid(files: string[], extra: string[], from = FIXTURES): Promise<UnderTest> {
  const m2: Mongrel2Handle = await startMongrel2({
    handlers: VARIANTS.map((v) => ({ name: v.name.replace(/\W+/g, '-'), route: v.prefix + '/', protocol: v.protocol })),
    settings: { 'limits.content_length': INLINE_LIMIT, 'upload.temp_store': '/tmp/upload.XXXXXX' },
  });
  const dirs: string[] = [];
  const wsgids: WsgidProcess[] = [];
  try {
    for (const variant of VARIANTS) {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'wsgid-conformance-'));
      dirs.push(dir);
      await mkdir(path.join(dir, 'app'));
      for (const file of files) await cp(path.join(from, file), path.join(dir, 'app', file), { recursive: true });
      await symlink(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'app', 'node_modules'), 'dir');
      const args = [`--workers=${variant.workers}`, '--graceful-timeout=5', '--env=NODE_ENV=production', ...extra];
      if (m2.chrooted) args.push(`--mongrel2-chroot=${m2.dir}`);
      const handler = m2.handler(variant.name.replace(/\W+/g, '-'));
      wsgids.push(await startWsgid(wsgidArgs(handler, dir, args), { cwd: dir, readyUrl: `${m2.baseUrl}${variant.prefix}/` }));
    }
  } catch (error) {
    await Promise.all(wsgids.map((w) => w.stop()));
    await m2.stop();
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
    throw error;
  }
  return {
    port: m2.port,
    variants: VARIANTS.map(({ name, prefix }) => ({ name, prefix })),
    diagnostics: () =>
      wsgids.map((w, i) => `--- wsgid ${VARIANTS[i]!.name}\n${w.output().slice(-1500)}`).join('\n') + `\n--- mongrel2\n${m2.log().slice(-800)}`,
    async stop() {
      const codes = await Promise.all(wsgids.map((w) => w.stop()));
      await m2.stop();
      await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
      return codes;
    },
  };
}
