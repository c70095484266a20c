/**
 * wsgid benchmark: `npm run bench` (build, then `node dist/bench/run.js`).
 *
 * One run measures, each against a fresh real mongrel2, with wrk (-t2 -c50 -d10s --latency):
 *   bare       a bare zeromq handler (bench/bare-handler.ts): the baseline
 *   fetch-w0   hello-world fetch app through wsgid, single process (--workers=0)
 *   fetch-w1   the same with the master and 1 worker (--workers=1); also the master's CPU per request
 *   express-w1 an Express app (JSON body, middleware) through wsgid --workers=1
 *   wsgi-w1    a WSGI hello world through wsgid --workers=1
 *   asgi-w1    an ASGI hello world through wsgid --workers=1 (--asgi)
 *   django-w1  a Django template page through wsgid --workers=1
 *   django-site-w1  a Django project (startproject + an app whose view renders a template) through wsgid --workers=1
 *   fastapi-w1      a FastAPI JSON route (pydantic model, path and query parameters) through wsgid --workers=1 (--asgi)
 * and, as references without mongrel2 (plain HTTP straight to the server):
 *   express-direct  the same Express app on node:http
 *   gunicorn        the same WSGI app under gunicorn (1 sync worker)
 *   uvicorn         the same ASGI app under uvicorn (1 worker, its default loop and HTTP parser)
 *   gunicorn-django the Django module of django-w1 under gunicorn (1 sync worker)
 *   gunicorn-django-site  the Django project of django-site-w1 under gunicorn (1 sync worker)
 *   uvicorn-fastapi       the FastAPI app of fastapi-w1 under uvicorn (1 worker)
 * and what users run instead of mongrel2 + wsgid: nginx (1 worker, HTTP/1.1 upstream keepalive) in
 * front of express-direct, gunicorn, uvicorn, gunicorn-django-site and uvicorn-fastapi (nginx-<ref>);
 * fetch-w2 and wsgi-w2 (--workers=2 on this 2-core machine); and the front servers' floor, a static
 * file from mongrel2's Dir handler (m2-static) and from nginx (nginx-static).
 * `stack µs/req` is the whole stack's CPU per request: the handler tree plus its front server.
 * A pair listed in SAME_BODY must answer its check with the same body bytes on both sides before
 * either side is measured.
 *
 * Env: BENCH_DURATION (s, 10), BENCH_WARMUP (s, 1), BENCH_CONNECTIONS (50), BENCH_THREADS (2),
 * BENCH_CASES (comma-separated ids, default all), BENCH_VERBOSE=1 (echo service output),
 * BENCH_WSGID_ARGS (extra wsgid arguments, e.g. "--threads=2").
 * Progress goes to stderr; the table and a one-line JSON summary (last line) go to stdout.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startMongrel2, freePort, type Mongrel2Handle } from '../test/helpers/mongrel2.js';
import { request, waitForHttp, type HttpResponse } from '../test/helpers/http.js';
import { REPO_ROOT, WSGID_CLI } from '../test/helpers/wsgid.js';
import { runWrk, type WrkResult } from './wrk.js';
import { cpuSeconds, cpuDelta, cpuDeltaOf, treeCpu, rssOf } from './proc.js';
import { startNginx, nginxMissing, NGINX_BIN } from './nginx.js';

const num = (name: string, dflt: number): number => {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v.replace(/s$/, ''));
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}=${v} is not a positive number`);
  return n;
};

const DURATION = num('BENCH_DURATION', 10);
const WARMUP = num('BENCH_WARMUP', 1);
const CONNECTIONS = num('BENCH_CONNECTIONS', 50);
const THREADS = num('BENCH_THREADS', 2);
/** Extra wsgid arguments for every wsgid case (A/B runs), e.g. BENCH_WSGID_ARGS="--threads=2". */
const EXTRA_ARGS = (process.env.BENCH_WSGID_ARGS ?? '').split(/\s+/).filter(Boolean);
const ONLY = (process.env.BENCH_CASES ?? '').split(',').map((s) => s.trim()).filter(Boolean);
const VERBOSE = process.env.BENCH_VERBOSE === '1';
const PYTHON = process.env.BENCH_PYTHON ?? '/usr/bin/python3';

const APPS_SRC = path.join(REPO_ROOT, 'bench', 'apps');
const RUN_DIR = path.join(REPO_ROOT, 'dist', 'bench', 'run-apps');
const BARE_HANDLER = path.join(REPO_ROOT, 'dist', 'bench', 'bare-handler.js');
const SERVE_NODE = path.join(REPO_ROOT, 'dist', 'bench', 'serve-node.js');

const progress = (s: string) => process.stderr.write(`[bench] ${s}\n`);

// ------------------------------------------------------------------------------------------------
// Services (processes we start and must stop)

interface Service {
  readonly name: string;
  /** Absent for a process a helper started (mongrel2 of the static-file case). */
  readonly child?: ChildProcess;
  readonly pid: number;
  output(): string;
  stop(): Promise<void>;
}

const liveChildren = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of liveChildren) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function spawnService(name: string, cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Service {
  const child = spawn(cmd, args, {
    cwd: opts.cwd ?? REPO_ROOT,
    env: { ...process.env, ...(opts.env ?? {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(child);
  let out = '';
  const onData = (s: string) => {
    // keep the tail only: services may log every request
    out = (out + s).slice(-20_000);
    if (VERBOSE) process.stderr.write(`[${name}] ${s}`);
  };
  child.stdout!.setEncoding('utf8').on('data', onData);
  child.stderr!.setEncoding('utf8').on('data', onData);
  child.on('error', (e) => (out += `\nspawn error: ${e.message}`));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('exit', () => liveChildren.delete(child));
  let stopping: Promise<void> | undefined;
  return {
    name,
    child,
    pid: child.pid ?? -1,
    output: () => out,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        let t: NodeJS.Timeout | undefined;
        const killed = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => (t = setTimeout(() => r(true), 8000)))]);
        clearTimeout(t);
        if (killed) {
          progress(`${name} did not stop within 8 s of SIGTERM: SIGKILL`);
          child.kill('SIGKILL');
          await exited;
        }
      })();
      return stopping;
    },
  };
}

/** Wait until `url` answers (any status); fail fast if the service dies. */
async function waitReady(svc: Service, url: string, timeoutMs = 20_000): Promise<void> {
  try {
    await waitForHttp(url, timeoutMs, {
      abort: () => {
        const c = svc.child;
        return c && (c.exitCode !== null || c.signalCode !== null) ? `${svc.name} exited (${c.exitCode ?? c.signalCode})` : undefined;
      },
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- ${svc.name} output (tail) ---\n${svc.output().slice(-3000)}`);
  }
}

/** A fresh app folder dist/bench/run-apps/<id>/ with app/<files> copied from bench/apps. */
function appFolder(id: string, files: string[]): string {
  const dir = path.join(RUN_DIR, id);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.join(dir, 'app'), { recursive: true });
  for (const d of ['logs', 'pid']) mkdirSync(path.join(dir, d), { recursive: true });
  for (const f of files) cpSync(path.join(APPS_SRC, f), path.join(dir, 'app', f));
  return dir;
}

/** A fresh app folder dist/bench/run-apps/<id>/ whose app/ is a copy of the project folder bench/apps/<project>/. */
function projectFolder(id: string, project: string): string {
  const dir = appFolder(id, []);
  cpSync(path.join(APPS_SRC, project), path.join(dir, 'app'), { recursive: true, filter: (src) => path.basename(src) !== '__pycache__' });
  return dir;
}

// ------------------------------------------------------------------------------------------------
// Cases

interface Check {
  method: string;
  path: string;
  body?: string;
  headers?: Record<string, string>;
  status: number;
  body_re: RegExp;
}

interface Running {
  /** Root of the handler's process tree (for CPU accounting). */
  svc: Service;
  /** URL wrk hits (path included). */
  url: string;
  /** For wsgid with workers: the master process (the tree root), whose own CPU is reported. */
  masterPid?: number;
  /** A front server started by the case itself (nginx before a reference): its CPU is the stack's
   *  too, and it is stopped with the case. */
  front?: Service;
}

interface Case {
  id: string;
  label: string;
  viaMongrel2: boolean;
  wrkScript?: string;
  check: Check;
  /** A reason to skip, or undefined. */
  skip(): string | undefined;
  start(m2: Mongrel2Handle | undefined): Promise<Running>;
}

const HELLO_CHECK: Check = { method: 'GET', path: '/', status: 200, body_re: /^Hello, world!$/ };
const EXPRESS_CHECK: Check = {
  method: 'POST',
  path: '/api/items',
  body: '{"name":"widget","tags":["a","b","c"],"qty":3}',
  headers: { 'Content-Type': 'application/json' },
  status: 201,
  body_re: /"name":"widget"/,
};

function wsgidMissing(): string | undefined {
  return existsSync(WSGID_CLI) ? undefined : `wsgid CLI not built (${path.relative(REPO_ROOT, WSGID_CLI)} missing)`;
}

function wsgiGatewayMissing(): string | undefined {
  const dir = path.join(REPO_ROOT, 'dist', 'src', 'gateways', 'wsgi');
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.js'));
  } catch {
    /* none */
  }
  return files.length === 0 ? 'the WSGI gateway is not there yet (dist/src/gateways/wsgi has no code)' : undefined;
}

let gunicornChecked: string | undefined | null = null;
function gunicornMissing(): string | undefined {
  if (gunicornChecked === null) {
    const r = spawnSync(PYTHON, ['-m', 'gunicorn', '--version'], { encoding: 'utf8' });
    gunicornChecked = r.status === 0 ? undefined : `gunicorn not available via ${PYTHON} -m gunicorn`;
  }
  return gunicornChecked;
}

let uvicornChecked: string | undefined | null = null;
function uvicornMissing(): string | undefined {
  if (uvicornChecked === null) {
    const r = spawnSync(PYTHON, ['-m', 'uvicorn', '--version'], { encoding: 'utf8' });
    uvicornChecked = r.status === 0 ? undefined : `uvicorn not available via ${PYTHON} -m uvicorn`;
  }
  return uvicornChecked;
}

function asgiGatewayMissing(): string | undefined {
  return existsSync(path.join(REPO_ROOT, 'dist', 'src', 'gateways', 'asgi', 'index.js')) ? undefined : 'the ASGI gateway is not built';
}

// Real apps: a project folder under bench/apps served by wsgid and by its usual server, from copies
// of the same folder and with the same Python (BENCH_PYTHON).

function pythonImports(modules: string): () => string | undefined {
  let found: string | undefined | null = null;
  return () => {
    if (found === null) {
      const r = spawnSync(PYTHON, ['-c', `import ${modules}`], { encoding: 'utf8' });
      found = r.status === 0 ? undefined : `${PYTHON} cannot import ${modules}`;
    }
    return found;
  };
}
const djangoMissing = pythonImports('django');
const fastapiMissing = pythonImports('fastapi, pydantic');

/** wsgid --workers=1 serving the project bench/apps/<project>/ with --<appFlag>=<appSpec>. */
function wsgidProjectCase(id: string, label: string, project: string, appFlag: 'wsgi-app' | 'asgi', appSpec: string, check: Check, extraSkip: () => string | undefined): Case {
  return {
    id,
    label,
    viaMongrel2: true,
    check,
    skip: () => wsgidMissing() ?? (appFlag === 'asgi' ? asgiGatewayMissing() : wsgiGatewayMissing()) ?? extraSkip(),
    async start(m2) {
      const h = m2!.handler('app');
      const dir = projectFolder(id, project);
      const svc = spawnService(id, process.execPath, [
        WSGID_CLI, '--no-daemon', `--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`,
        `--${appFlag}=${appSpec}`, '--workers=1', `--python=${PYTHON}`,
      ], { cwd: dir });
      await waitReady(svc, `${m2!.baseUrl}/`);
      return { svc, url: `${m2!.baseUrl}${check.path}`, masterPid: svc.pid };
    },
  };
}

/** The reference server (gunicorn or uvicorn, 1 worker, plain HTTP) serving a copy of bench/apps/<project>/. */
function pythonServerCase(id: string, label: string, project: string, server: 'gunicorn' | 'uvicorn', appSpec: string, check: Check, extraSkip: () => string | undefined): Case {
  return {
    id,
    label,
    viaMongrel2: false,
    check,
    skip: () => (server === 'gunicorn' ? gunicornMissing() : uvicornMissing()) ?? extraSkip(),
    async start() {
      const port = await freePort();
      const appDir = path.join(projectFolder(id, project), 'app');
      const args = server === 'gunicorn'
        ? ['-m', 'gunicorn', '--chdir', appDir, '--workers', '1', '--bind', `127.0.0.1:${port}`, '--log-level', 'warning', appSpec]
        : ['-m', 'uvicorn', '--app-dir', appDir, '--workers', '1', '--host', '127.0.0.1', '--port', String(port),
            '--log-level', 'warning', '--no-access-log', appSpec];
      const svc = spawnService(id, PYTHON, args, { cwd: appDir });
      const base = `http://127.0.0.1:${port}`;
      await waitReady(svc, `${base}/`);
      return { svc, url: `${base}${check.path}` };
    },
  };
}

const DJANGO_SITE_CHECK: Check = {
  method: 'GET',
  path: '/catalog/?sort=price',
  status: 200,
  body_re: /<h1>Catalogue<\/h1>[^]*<td>20<\/td>[^]*&copy; 2024 Bench shop &middot; 20 products<\/footer>/,
};
const FASTAPI_CHECK: Check = {
  method: 'GET',
  path: '/items/42?q=somequery',
  status: 200,
  body_re: /^\{"item_id":42,"name":"Item 42",[^]*"q":"somequery"\}$/,
};

function wsgidCase(id: string, label: string, files: string[], appSpec: string, workers: number, check: Check, extraSkip?: () => string | undefined, wrkScript?: string, appFlag = 'wsgi-app'): Case {
  return {
    id,
    label,
    viaMongrel2: true,
    check,
    wrkScript,
    skip: () => wsgidMissing() ?? extraSkip?.(),
    async start(m2) {
      const h = m2!.handler('app');
      const dir = appFolder(id, files);
      const svc = spawnService(id, process.execPath, [
        WSGID_CLI,
        '--no-daemon',
        `--app-path=${dir}`,
        `--recv=${h.recv}`,
        `--send=${h.send}`,
        `--${appFlag}=${appSpec}`,
        `--workers=${workers}`,
        `--python=${PYTHON}`, // the interpreter gunicorn runs with (Python cases; JavaScript ones ignore it)
        ...EXTRA_ARGS,
      ], { cwd: dir });
      await waitReady(svc, `${m2!.baseUrl}/`);
      return { svc, url: `${m2!.baseUrl}${check.path}`, masterPid: workers > 0 ? svc.pid : undefined };
    },
  };
}

const DJANGO_CHECK: Check = { method: 'GET', path: '/', status: 200, body_re: /<h1>Hello from Django<\/h1>[^]*20 items/ };

/** gunicorn (1 sync worker, plain HTTP) serving `appSpec` from bench/apps: a reference row. */
function gunicornCase(id: string, label: string, appSpec: string, check: Check, extraSkip?: () => string | undefined): Case {
  return {
    id,
    label,
    viaMongrel2: false,
    check,
    skip: () => gunicornMissing() ?? extraSkip?.(),
    async start() {
      const port = await freePort();
      const svc = spawnService(id, PYTHON, [
        '-m', 'gunicorn', '--chdir', APPS_SRC, '--workers', '1', '--bind', `127.0.0.1:${port}`,
        '--log-level', 'warning', appSpec,
      ]);
      const base = `http://127.0.0.1:${port}`;
      await waitReady(svc, `${base}/`);
      return { svc, url: `${base}${check.path}` };
    },
  };
}

const CASES: Case[] = [
  {
    id: 'bare',
    label: 'bare zeromq handler (baseline)',
    viaMongrel2: true,
    check: HELLO_CHECK,
    skip: () => (existsSync(BARE_HANDLER) ? undefined : `${BARE_HANDLER} not built`),
    async start(m2) {
      const h = m2!.handler('app');
      const svc = spawnService('bare', process.execPath, [BARE_HANDLER, `--recv=${h.recv}`, `--send=${h.send}`]);
      await waitReady(svc, `${m2!.baseUrl}/`);
      return { svc, url: `${m2!.baseUrl}/` };
    },
  },
  wsgidCase('fetch-w0', 'wsgid fetch hello, --workers=0', ['hello.mjs'], 'hello.mjs', 0, HELLO_CHECK),
  wsgidCase('fetch-w1', 'wsgid fetch hello, --workers=1', ['hello.mjs'], 'hello.mjs', 1, HELLO_CHECK),
  wsgidCase('express-w1', 'wsgid Express POST JSON, --workers=1', ['express-app.mjs'], 'express-app.mjs', 1, EXPRESS_CHECK, undefined, path.join(APPS_SRC, 'express-post.lua')),
  {
    id: 'express-direct',
    label: 'Express on node:http (ref, no mongrel2)',
    viaMongrel2: false,
    check: EXPRESS_CHECK,
    wrkScript: path.join(APPS_SRC, 'express-post.lua'),
    skip: () => (existsSync(SERVE_NODE) ? undefined : `${SERVE_NODE} not built`),
    async start() {
      const port = await freePort();
      const svc = spawnService('express-direct', process.execPath, [SERVE_NODE, path.join(APPS_SRC, 'express-app.mjs'), String(port)]);
      const base = `http://127.0.0.1:${port}`;
      await waitReady(svc, `${base}/`);
      return { svc, url: `${base}/api/items` };
    },
  },
  wsgidCase('wsgi-w1', 'wsgid WSGI hello, --workers=1', ['hello_wsgi.py'], 'hello_wsgi:application', 1, HELLO_CHECK, wsgiGatewayMissing),
  wsgidCase('django-w1', 'wsgid Django template page, --workers=1', ['django_page.py'], 'django_page:application', 1, DJANGO_CHECK, djangoMissing),
  gunicornCase('gunicorn-django', 'gunicorn Django template page, 1 sync worker (ref, no mongrel2)', 'django_page:application', DJANGO_CHECK, djangoMissing),
  {
    id: 'gunicorn',
    label: 'gunicorn WSGI hello, 1 sync worker (ref, no mongrel2)',
    viaMongrel2: false,
    check: HELLO_CHECK,
    skip: gunicornMissing,
    async start() {
      const port = await freePort();
      const svc = spawnService('gunicorn', PYTHON, [
        '-m', 'gunicorn', '--chdir', APPS_SRC, '--workers', '1', '--bind', `127.0.0.1:${port}`,
        '--log-level', 'warning', 'hello_wsgi:application',
      ]);
      const base = `http://127.0.0.1:${port}`;
      await waitReady(svc, `${base}/`);
      return { svc, url: `${base}/` };
    },
  },
  wsgidCase('asgi-w1', 'wsgid ASGI hello, --workers=1', ['hello_asgi.py'], 'hello_asgi:app', 1, HELLO_CHECK, asgiGatewayMissing, undefined, 'asgi'),
  {
    id: 'uvicorn',
    label: 'uvicorn ASGI hello, 1 worker (ref, no mongrel2)',
    viaMongrel2: false,
    check: HELLO_CHECK,
    skip: uvicornMissing,
    async start() {
      const port = await freePort();
      const svc = spawnService('uvicorn', PYTHON, [
        '-m', 'uvicorn', '--app-dir', APPS_SRC, '--workers', '1', '--host', '127.0.0.1', '--port', String(port),
        '--log-level', 'warning', '--no-access-log', 'hello_asgi:app',
      ]);
      const base = `http://127.0.0.1:${port}`;
      await waitReady(svc, `${base}/`);
      return { svc, url: `${base}/` };
    },
  },
  wsgidProjectCase('django-site-w1', 'wsgid Django project, template page, --workers=1', 'djangosite', 'wsgi-app', 'benchsite.wsgi:application', DJANGO_SITE_CHECK, djangoMissing),
  pythonServerCase('gunicorn-django-site', 'gunicorn Django project, 1 sync worker (ref, no mongrel2)', 'djangosite', 'gunicorn', 'benchsite.wsgi:application', DJANGO_SITE_CHECK, djangoMissing),
  wsgidProjectCase('fastapi-w1', 'wsgid FastAPI JSON route, --workers=1', 'fastapi_items', 'asgi', 'main:app', FASTAPI_CHECK, fastapiMissing),
  pythonServerCase('uvicorn-fastapi', 'uvicorn FastAPI JSON route, 1 worker (ref, no mongrel2)', 'fastapi_items', 'uvicorn', 'main:app', FASTAPI_CHECK, fastapiMissing),
];

/**
 * `ref` behind nginx: what a user runs instead of mongrel2 + wsgid. nginx 1 worker process,
 * `proxy_http_version 1.1` with an upstream `keepalive` pool, access log on (mongrel2 writes one
 * too), in front of the reference server the case starts.
 */
function behindNginx(ref: Case): Case {
  return {
    id: `nginx-${ref.id}`,
    label: `nginx + ${ref.label.replace(/ \(ref, no mongrel2\)$/, '')} (ref)`,
    viaMongrel2: false,
    check: ref.check,
    wrkScript: ref.wrkScript,
    skip: () => nginxMissing() ?? ref.skip(),
    async start() {
      const upstream = await ref.start(undefined);
      try {
        const front = await startNginx({ upstream: new URL(upstream.url).host, spawn: (args) => spawnService(`nginx-${ref.id}`, NGINX_BIN, args) });
        await waitReady(front.svc, `${front.baseUrl}/`);
        return { svc: upstream.svc, url: `${front.baseUrl}${ref.check.path}`, front: front.svc };
      } catch (err) {
        await upstream.svc.stop();
        throw err;
      }
    },
  };
}

const STATIC_CHECK: Check = { method: 'GET', path: '/static/hello.txt', status: 200, body_re: /^Hello, world!$/ };

/** The front servers' floor: a 13-byte file served by mongrel2's own Dir handler, and by nginx. */
const STATIC_CASES: Case[] = [
  {
    id: 'm2-static',
    label: 'mongrel2 Dir handler, static file (floor)',
    // mongrel2 is the server here (its CPU is the row's), not a front for a handler.
    viaMongrel2: false,
    check: STATIC_CHECK,
    skip: () => undefined,
    async start() {
      const own = await startMongrel2({
        handlers: [{ name: 'app', route: '/app/', protocol: 'tnetstring' }],
        staticDir: { route: '/static/', files: { 'hello.txt': 'Hello, world!' } },
      });
      const svc: Service = { name: 'm2-static', pid: own.pid, output: () => own.log(), stop: () => own.stop() };
      return { svc, url: `${own.baseUrl}${STATIC_CHECK.path}` };
    },
  },
  {
    id: 'nginx-static',
    label: 'nginx root, static file (floor)',
    viaMongrel2: false,
    check: STATIC_CHECK,
    skip: nginxMissing,
    async start() {
      const front = await startNginx({ staticFiles: { 'hello.txt': 'Hello, world!' }, spawn: (args) => spawnService('nginx-static', NGINX_BIN, args) });
      await waitReady(front.svc, `${front.baseUrl}${STATIC_CHECK.path}`);
      return { svc: front.svc, url: `${front.baseUrl}${STATIC_CHECK.path}` };
    },
  },
];

const refCase = (id: string): Case => {
  const c = CASES.find((x) => x.id === id);
  if (!c) throw new Error(`bench: no case ${id}`);
  return c;
};
CASES.push(
  behindNginx(refCase('express-direct')),
  behindNginx(refCase('gunicorn')),
  behindNginx(refCase('uvicorn')),
  behindNginx(refCase('gunicorn-django-site')),
  behindNginx(refCase('uvicorn-fastapi')),
  {
    ...refCase('fetch-w1'),
    id: 'fetch-w2',
    label: 'wsgid fetch hello, --workers=2',
    start: wsgidCase('fetch-w2', '', ['hello.mjs'], 'hello.mjs', 2, HELLO_CHECK).start,
  },
  {
    ...refCase('wsgi-w1'),
    id: 'wsgi-w2',
    label: 'wsgid WSGI hello, --workers=2',
    start: wsgidCase('wsgi-w2', '', ['hello_wsgi.py'], 'hello_wsgi:application', 2, HELLO_CHECK).start,
  },
  ...STATIC_CASES,
);
/** Run order: each wsgid case next to the references it is compared with (a drift of the machine
 *  during the run then affects both sides alike). */
const ORDER = [
  'bare', 'fetch-w0', 'fetch-w1', 'fetch-w2', 'express-w1', 'express-direct', 'nginx-express-direct',
  'wsgi-w1', 'wsgi-w2', 'gunicorn', 'nginx-gunicorn', 'django-w1', 'gunicorn-django',
  'asgi-w1', 'uvicorn', 'nginx-uvicorn', 'django-site-w1', 'gunicorn-django-site', 'nginx-gunicorn-django-site',
  'fastapi-w1', 'uvicorn-fastapi', 'nginx-uvicorn-fastapi', 'm2-static', 'nginx-static',
];
CASES.sort((a, b) => ORDER.indexOf(a.id) - ORDER.indexOf(b.id));
if (CASES.some((c) => !ORDER.includes(c.id))) throw new Error('bench: a case is missing from ORDER');

/**
 * Pairs that must give the same response body to their check: the app under wsgid and under its
 * usual server. A bench that measures an error page, or a different page, is worthless.
 */
const SAME_BODY: ReadonlyArray<readonly [string, string]> = [
  ['django-w1', 'gunicorn-django'],
  ['django-site-w1', 'gunicorn-django-site'],
  ['fastapi-w1', 'uvicorn-fastapi'],
];

// ------------------------------------------------------------------------------------------------

interface Outcome {
  id: string;
  label: string;
  viaMongrel2: boolean;
  skipped?: string;
  wrk?: WrkResult;
  /** CPU µs per request: the handler's whole process tree, the wsgid master alone, mongrel2. */
  cpuUsPerReq?: number;
  masterUsPerReq?: number;
  /** The Python processes in the tree (wsgid's bridge.py; for gunicorn, all of it). */
  pyUsPerReq?: number;
  m2UsPerReq?: number;
  /** nginx (master and worker) when a case puts it in front. */
  nginxUsPerReq?: number;
  /** The whole stack: the handler's tree plus the front server (mongrel2 or nginx), if any. */
  stackUsPerReq?: number;
  /** RSS after the measured run, MB: of the serving processes (the tree less its root when the
   *  root only supervises: wsgid's master, gunicorn's arbiter), and of the whole tree. */
  workerRssMb?: number;
  treeRssMb?: number;
}

function firstLines(s: string, n = 3): string {
  const text = s.split('\n').filter(Boolean).slice(0, n).join(' | ');
  return text.length > 400 ? `${text.slice(0, 400)}…` : text;
}

/** The answer to the case's check request, or why it is wrong. */
async function checkAnswer(c: Case, running: Running): Promise<HttpResponse | string> {
  const res = await request(`${new URL(running.url).origin}${c.check.path}`, {
    method: c.check.method,
    headers: c.check.headers,
    body: c.check.body,
    timeoutMs: 5000,
  });
  if (res.status !== c.check.status || !c.check.body_re.test(res.text)) {
    return `wrong answer to ${c.check.method} ${c.check.path}: ${res.status} ${JSON.stringify(res.text.slice(0, 200))}`;
  }
  return res;
}

/** Bodies of the checks answered so far, by case id (a measured run's, or a probe's). */
const checkedBodies = new Map<string, Buffer>();

/** The body `c` answers to its check, from a run so far or else from a short start of `c` (no wrk). */
async function bodyOf(c: Case): Promise<Buffer | string> {
  const seen = checkedBodies.get(c.id);
  if (seen) return seen;
  const reason = c.skip();
  if (reason) return reason;
  progress(`${c.id}: started to compare bodies`);
  let m2: Mongrel2Handle | undefined;
  let running: Running | undefined;
  try {
    if (c.viaMongrel2) m2 = await startMongrel2({ handlers: [{ name: 'app', route: '/', protocol: 'tnetstring' }] });
    running = await c.start(m2);
    const res = await checkAnswer(c, running);
    if (typeof res === 'string') return res;
    checkedBodies.set(c.id, res.body);
    return res.body;
  } catch (err) {
    return `failed: ${firstLines((err as Error).message, 6)}`;
  } finally {
    await running?.front?.stop();
    await running?.svc.stop();
    await m2?.stop();
  }
}

/** Why `body` (c's answer) does not match its SAME_BODY partner's, or undefined when it does. */
async function bodyDiffers(c: Case, body: Buffer): Promise<string | undefined> {
  checkedBodies.set(c.id, body);
  const pair = SAME_BODY.find((p) => p.includes(c.id));
  const other = CASES.find((o) => o.id === (pair?.[0] === c.id ? pair[1] : pair?.[0]));
  if (!other) return undefined;
  const theirs = await bodyOf(other);
  if (typeof theirs === 'string') return `cannot compare its body with ${other.id}'s: ${theirs}`;
  if (theirs.equals(body)) return undefined;
  let at = 0;
  while (at < body.length && at < theirs.length && body[at] === theirs[at]) at++;
  const around = (b: Buffer) => JSON.stringify(b.subarray(Math.max(0, at - 40), at + 80).toString('utf8'));
  return `its body differs from ${other.id}'s at byte ${at} (${body.length} vs ${theirs.length} bytes): ${around(body)} vs ${around(theirs)}`;
}

async function runCase(c: Case): Promise<Outcome> {
  const base: Outcome = { id: c.id, label: c.label, viaMongrel2: c.viaMongrel2 };
  const reason = c.skip();
  if (reason) {
    progress(`${c.id}: skipped: ${reason}`);
    return { ...base, skipped: reason };
  }
  progress(`${c.id}: starting`);
  let m2: Mongrel2Handle | undefined;
  let running: Running | undefined;
  try {
    if (c.viaMongrel2) m2 = await startMongrel2({ handlers: [{ name: 'app', route: '/', protocol: 'tnetstring' }] });
    try {
      running = await c.start(m2);
    } catch (err) {
      return { ...base, skipped: `failed to start: ${firstLines((err as Error).message, 6)}` };
    }
    // Correctness first: a fast wrong answer is no result.
    const res = await checkAnswer(c, running);
    if (typeof res === 'string') return { ...base, skipped: res };
    const differs = await bodyDiffers(c, res.body);
    if (differs) return { ...base, skipped: differs };
    progress(`${c.id}: warm-up ${WARMUP}s`);
    await runWrk({ url: running.url, threads: THREADS, connections: CONNECTIONS, duration: WARMUP, script: c.wrkScript });
    const treeBefore = treeCpu(running.svc.pid);
    const masterBefore = running.masterPid ? cpuSeconds(running.masterPid) : undefined;
    const m2Before = m2 ? cpuSeconds(m2.pid) : undefined;
    const frontBefore = running.front ? treeCpu(running.front.pid) : undefined;
    progress(`${c.id}: wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION}s`);
    const wrk = await runWrk({ url: running.url, threads: THREADS, connections: CONNECTIONS, duration: DURATION, script: c.wrkScript });
    const treeAfter = treeCpu(running.svc.pid);
    const masterAfter = running.masterPid ? cpuSeconds(running.masterPid) : undefined;
    const m2After = m2 ? cpuSeconds(m2.pid) : undefined;
    const frontAfter = running.front ? treeCpu(running.front.pid) : undefined;
    const rss = rssOf(running.svc.pid);
    const perReq = (sec: number | undefined) => (sec === undefined || wrk.requests === 0 ? undefined : (sec * 1e6) / wrk.requests);
    const out: Outcome = {
      ...base,
      wrk,
      cpuUsPerReq: perReq(cpuDelta(treeBefore, treeAfter)),
      masterUsPerReq: masterBefore !== undefined && masterAfter !== undefined ? perReq(masterAfter - masterBefore) : undefined,
      m2UsPerReq: m2Before !== undefined && m2After !== undefined ? perReq(m2After - m2Before) : undefined,
      pyUsPerReq: perReq(cpuDeltaOf(treeBefore, treeAfter, /^python/)),
      nginxUsPerReq: frontBefore && frontAfter ? perReq(cpuDelta(frontBefore, frontAfter)) : undefined,
      workerRssMb: rss.serving,
      treeRssMb: rss.tree,
    };
    out.stackUsPerReq = (out.cpuUsPerReq ?? 0) + (out.m2UsPerReq ?? 0) + (out.nginxUsPerReq ?? 0);
    progress(`${c.id}: ${wrk.rps.toFixed(0)} req/s, p50 ${wrk.p50.toFixed(2)} ms, p99 ${wrk.p99.toFixed(2)} ms`);
    return out;
  } catch (err) {
    return { ...base, skipped: `failed: ${firstLines((err as Error).message, 6)}` };
  } finally {
    await running?.front?.stop();
    await running?.svc.stop();
    await m2?.stop();
  }
}

function fmt(n: number | undefined, digits = 2): string {
  return n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits);
}

/** ", <label> X×": case a's `field` over case b's, when both were measured. */
function cpuRatio(outcomes: Outcome[], a: string, b: string, field: 'cpuUsPerReq' | 'stackUsPerReq' = 'cpuUsPerReq', label = 'cpu/req'): string {
  const x = outcomes.find((o) => o.id === a)?.[field];
  const y = outcomes.find((o) => o.id === b)?.[field];
  return x !== undefined && y !== undefined && y > 0 ? `, ${label} ${fmt(x / y)}×` : '';
}

function printTable(outcomes: Outcome[]): void {
  const bare = outcomes.find((o) => o.id === 'bare')?.wrk;
  const header = ['case', 'req/s', 'p50 ms', 'p99 ms', 'rate×', 'p99×', 'cpu µs/req', 'master µs/req', 'py µs/req', 'm2 µs/req', 'nginx µs/req', 'stack µs/req', 'worker MB', 'errors'];
  const rows: string[][] = [];
  for (const o of outcomes) {
    if (!o.wrk) continue;
    const w = o.wrk;
    const errs = w.errors.connect + w.errors.read + w.errors.write + w.errors.timeout;
    rows.push([
      `${o.id}: ${o.label}`,
      w.rps.toFixed(0),
      fmt(w.p50),
      fmt(w.p99),
      bare ? fmt(w.rps / bare.rps) : '-',
      bare ? fmt(w.p99 / bare.p99) : '-',
      fmt(o.cpuUsPerReq, 1),
      fmt(o.masterUsPerReq, 1),
      fmt(o.pyUsPerReq, 1),
      fmt(o.m2UsPerReq, 1),
      fmt(o.nginxUsPerReq, 1),
      fmt(o.stackUsPerReq, 1),
      fmt(o.workerRssMb, 1),
      errs || w.non2xx ? `${errs} sock, ${w.non2xx} non-2xx` : '0',
    ]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log('');
  console.log(`wsgid bench: wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION}s --latency, ${new Date().toISOString()}, node ${process.version}`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
  for (const o of outcomes) if (o.skipped) console.log(`${o.id}: skipped: ${o.skipped}`);
  console.log('rate× and p99× are relative to the bare handler; "ref" rows are plain HTTP without mongrel2.');
  console.log(
    'cpu µs/req: the handler process tree (wsgid master + workers + their Python); master: the wsgid master alone; ' +
      'py: the Python processes in the tree (bridge.py; for gunicorn all of it); m2: mongrel2; nginx: nginx in front of a reference; ' +
      'stack: the handler tree + its front server (mongrel2 or nginx); worker MB: RSS after the run of the serving processes ' +
      '(wsgid workers with their Python, gunicorn\'s worker, a single-process server itself).',
  );
  // `stack`: compare whole stacks (front server included), as users choose between them.
  const pair = (a: string, b: string, what: string, stack = false) => {
    const x = outcomes.find((o) => o.id === a)?.wrk;
    const y = outcomes.find((o) => o.id === b)?.wrk;
    const cpu = stack ? cpuRatio(outcomes, a, b, 'stackUsPerReq', 'stack cpu/req') : cpuRatio(outcomes, a, b);
    if (x && y) console.log(`${what}: rate ${fmt(x.rps / y.rps)}×, p99 ${fmt(x.p99 / y.p99)}×${cpu}`);
  };
  pair('express-w1', 'express-direct', 'Express via wsgid vs Express on node:http');
  pair('wsgi-w1', 'gunicorn', 'WSGI via wsgid vs gunicorn');
  pair('asgi-w1', 'uvicorn', 'ASGI via wsgid vs uvicorn');
  pair('django-w1', 'gunicorn-django', 'Django via wsgid vs gunicorn');
  pair('django-site-w1', 'gunicorn-django-site', 'Django project via wsgid vs gunicorn');
  pair('fastapi-w1', 'uvicorn-fastapi', 'FastAPI via wsgid vs uvicorn');
  // The stacks users choose between: mongrel2 + wsgid against nginx + the reference server.
  pair('wsgi-w1', 'nginx-gunicorn', 'stack: mongrel2 + wsgid WSGI vs nginx + gunicorn', true);
  pair('asgi-w1', 'nginx-uvicorn', 'stack: mongrel2 + wsgid ASGI vs nginx + uvicorn', true);
  pair('express-w1', 'nginx-express-direct', 'stack: mongrel2 + wsgid Express vs nginx + Express on node:http', true);
  pair('django-site-w1', 'nginx-gunicorn-django-site', 'stack: mongrel2 + wsgid Django project vs nginx + gunicorn', true);
  pair('fastapi-w1', 'nginx-uvicorn-fastapi', 'stack: mongrel2 + wsgid FastAPI vs nginx + uvicorn', true);
  pair('fetch-w1', 'bare', 'stack: wsgid fetch --workers=1 vs the bare handler', true);
  pair('fetch-w2', 'fetch-w1', 'wsgid fetch --workers=2 vs --workers=1', true);
  pair('wsgi-w2', 'wsgi-w1', 'wsgid WSGI --workers=2 vs --workers=1', true);
  pair('m2-static', 'nginx-static', 'front servers, static file: mongrel2 vs nginx', true);
  const m = outcomes.find((o) => o.id === 'fetch-w1');
  if (m?.masterUsPerReq !== undefined) console.log(`wsgid master CPU per request (fetch-w1): ${fmt(m.masterUsPerReq, 1)} µs`);
}

function summary(outcomes: Outcome[]): string {
  const bare = outcomes.find((o) => o.id === 'bare')?.wrk;
  const cases: Record<string, unknown> = {};
  for (const o of outcomes) {
    if (o.skipped || !o.wrk) {
      cases[o.id] = { skipped: o.skipped ?? 'no result' };
      continue;
    }
    const w = o.wrk;
    const r = (n: number | undefined, d = 3) => (n === undefined || !Number.isFinite(n) ? null : Number(n.toFixed(d)));
    cases[o.id] = {
      rps: r(w.rps, 1),
      p50Ms: r(w.p50),
      p99Ms: r(w.p99),
      requests: w.requests,
      rateRatio: bare ? r(w.rps / bare.rps) : null,
      p99Ratio: bare ? r(w.p99 / bare.p99) : null,
      cpuUsPerReq: r(o.cpuUsPerReq, 2),
      masterUsPerReq: r(o.masterUsPerReq, 2),
      mongrel2UsPerReq: r(o.m2UsPerReq, 2),
      pythonUsPerReq: r(o.pyUsPerReq, 2),
      nginxUsPerReq: r(o.nginxUsPerReq, 2),
      stackUsPerReq: r(o.stackUsPerReq, 2),
      workerRssMb: r(o.workerRssMb, 1),
      treeRssMb: r(o.treeRssMb, 1),
      errors: w.errors.connect + w.errors.read + w.errors.write + w.errors.timeout,
      non2xx: w.non2xx,
    };
  }
  return JSON.stringify({ bench: 'wsgid', durationS: DURATION, connections: CONNECTIONS, threads: THREADS, node: process.version, cases });
}

async function main(): Promise<void> {
  const selected = ONLY.length ? CASES.filter((c) => ONLY.includes(c.id)) : CASES;
  if (selected.length === 0) throw new Error(`BENCH_CASES=${ONLY.join(',')} matches none of ${CASES.map((c) => c.id).join(', ')}`);
  const outcomes: Outcome[] = [];
  for (const c of selected) outcomes.push(await runCase(c));
  printTable(outcomes);
  console.log(summary(outcomes));
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
