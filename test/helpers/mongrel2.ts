/**
 * Test helper: run a REAL mongrel2 (Debian's 1.12.2) in a private temp folder for one test.
 *
 *   const m2 = await startMongrel2();            // tnetstring handler 'app' at '/', json 'json' at '/json/'
 *   const { recv, send, sendIdent } = m2.handler('app');
 *   ... connect PULL to recv, PUB to send, make requests to m2.baseUrl ...
 *   await m2.stop();
 *
 * Privileges: run as root, mongrel2 chroots into the folder and drops to the folder's owner (the
 * user running the tests, since we create it: root stays root). Run as non-root, it cannot chroot and
 * runs in "test mode": it stays in the folder (cwd) and prefixes the pid file with the chroot, but
 * NOT the log files or `upload.temp_store`. So, when not root, we rewrite absolute paths in the
 * config to absolute paths inside the folder; `resolvePath()` maps a path mongrel2 reports (e.g. an
 * upload's `x-mongrel2-upload-start`) to the real file in both cases.
 *
 * Every started mongrel2 is also killed (SIGKILL) and its folder removed when the test process
 * exits, so a crashed test leaves nothing behind.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, writeFile, readFile, rm } from 'node:fs/promises';
import { readFileSync, rmSync } from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const MONGREL2_BIN = process.env.MONGREL2_BIN ?? '/usr/bin/mongrel2';
export const M2SH_BIN = process.env.M2SH_BIN ?? '/usr/bin/m2sh';

export interface Mongrel2HandlerOptions {
  /** Name used with `handle.handler(name)`; also the start of the send_ident. */
  name: string;
  /** Route key, e.g. '/', '/json/', '/api/(.*)$'. */
  route: string;
  /** Header format; mongrel2's default is json, ours too when not given. */
  protocol?: 'json' | 'tnetstring';
  /** Override the generated send_ident ([A-Za-z0-9-] only). */
  sendIdent?: string;
  /** recv_ident (reply prefix filter); '' (accept every reply) by default. */
  recvIdent?: string;
}

export interface Mongrel2Options {
  /** Default: `app` (tnetstring) at '/' and `json` (json) at '/json/'. */
  handlers?: Mongrel2HandlerOptions[];
  /** mongrel2 settings, e.g. {'limits.content_length': 1024, 'upload.temp_store': '/tmp/upload.XXXXXX'}.
   *  `server.daemonize` is always forced to 0. */
  settings?: Record<string, string | number>;
  /** Default 127.0.0.1. */
  bindAddr?: string;
  /** Max time to wait for the HTTP port, default 10 s. */
  startTimeoutMs?: number;
  /**
   * Run mongrel2 inside this network namespace (`ip netns exec NS mongrel2 ...`; needs root).
   * `bindAddr` should then be an address of the namespace: the HTTP port AND the handler zmq
   * endpoints bind there (without netns the zmq endpoints stay on 127.0.0.1), and readiness is
   * probed from inside the namespace. Ports are picked on the root namespace's loopback: a fresh
   * namespace has all of them free.
   */
  netns?: string;
  /** A static-file route served by mongrel2 itself (its `Dir` handler): `files` are written under
   *  `static/` in mongrel2's folder (its chroot), served at `route` (which ends in '/'). */
  staticDir?: { route: string; files: Record<string, string> };
}

export interface Mongrel2HandlerEndpoints {
  /** The handler's send_spec: wsgid / the test connects a PULL here. */
  recv: string;
  /** The handler's recv_spec: wsgid / the test connects a PUB here. */
  send: string;
  /** The handler's send_ident: the sender of every request, and the prefix of replies. */
  sendIdent: string;
  /** recv_ident as configured ('' by default). */
  recvIdent: string;
  route: string;
  protocol: 'json' | 'tnetstring';
}

export interface Mongrel2Handle {
  readonly port: number;
  /** http://127.0.0.1:port (no trailing slash). */
  readonly baseUrl: string;
  /** The temp folder = mongrel2's chroot; uploads live under it. */
  readonly dir: string;
  /** The server uuid. */
  readonly uuid: string;
  /** pid of the mongrel2 process. */
  readonly pid: number;
  /** true when mongrel2 chrooted (we are root); false in "test mode". */
  readonly chrooted: boolean;
  /** Handler names in config order. */
  readonly handlerNames: readonly string[];
  /** Endpoints of a handler. Throws with the known names if `name` is unknown. */
  handler(name: string): Mongrel2HandlerEndpoints;
  /** Map a path mongrel2 reports (upload temp file) to the real path on disk. */
  resolvePath(reported: string): string;
  /** Pass to wsgid as --mongrel2-chroot: the folder when chrooted, '' (none) in test mode. */
  readonly chroot: string;
  /** SIGINT, and soon a second SIGINT (mongrel2's "exit now"; with `graceful`, only after 3 s), then
   *  SIGKILL if still needed; waits for the exit and removes the folder. Idempotent (first call wins). */
  stop(options?: { graceful?: boolean }): Promise<void>;
  /** error.log plus whatever mongrel2 printed on stdout/stderr (for assertion messages). */
  log(): string;
  /** Has the process exited? */
  readonly exited: boolean;
}

/** A free TCP port on 127.0.0.1 (bind to 0, read it, close). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('no port'));
        return;
      }
      const { port } = addr;
      srv.close(() => resolve(port));
    });
  });
}

/** Distinct free ports (kept distinct even if the OS hands the same one out twice). */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const out: number[] = [];
  let guard = 0;
  while (out.length < n) {
    const p = await freePort(host);
    if (!out.includes(p)) out.push(p);
    if (++guard > n * 20) throw new Error('could not find free ports');
  }
  return out;
}

function pyString(s: string): string {
  // Python accepts JSON-style double-quoted strings for the characters we use.
  return JSON.stringify(s);
}

function pyValue(v: string | number): string {
  return typeof v === 'number' ? String(v) : pyString(v);
}

function sanitizeIdent(s: string): string {
  const cleaned = s.replace(/[^A-Za-z0-9-]/g, '-').replace(/^-+|-+$/g, '');
  return cleaned === '' ? 'h' : cleaned;
}

function execFileP(file: string, args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, env: childEnv() }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

function childEnv(): NodeJS.ProcessEnv {
  // mongrel2 complains at exit ("getlogin failed and no LOGNAME") when LOGNAME is missing.
  const user = (() => {
    try {
      return os.userInfo().username;
    } catch {
      return 'root';
    }
  })();
  return { ...process.env, LOGNAME: process.env.LOGNAME ?? user };
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (ok: boolean) => {
      sock.removeAllListeners();
      sock.on('error', () => {});
      sock.destroy();
      resolve(ok);
    };
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
    sock.setTimeout(500, () => done(false));
  });
}

/** canConnect from inside network namespace `netns` (bash's /dev/tcp, run with `ip netns exec`). */
function canConnectInNetns(netns: string, host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', netns, 'bash', '-c', `exec 3<>/dev/tcp/${host}/${port}`], { timeout: 2000 }, (err) =>
      resolve(err === null),
    );
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- cleanup of everything still running when the process exits ----
const live = new Set<{ child: ChildProcess; dir: string }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const entry of live) {
      try {
        if (entry.child.exitCode === null && entry.child.signalCode === null) entry.child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
      try {
        rmSync(entry.dir, { recursive: true, force: true });
      } catch {
        /* best effort */
      }
    }
    live.clear();
  });
  // Turn fatal signals into a normal exit so the 'exit' hook runs (only if nobody else handles them).
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    if (process.listenerCount(sig) === 0) {
      process.once(sig, () => process.exit(128 + (os.constants.signals[sig] ?? 1)));
    }
  }
}

const DEFAULT_HANDLERS: Mongrel2HandlerOptions[] = [
  { name: 'app', route: '/', protocol: 'tnetstring' },
  { name: 'json', route: '/json/', protocol: 'json' },
];
/** Other names accepted for the default handlers. */
const DEFAULT_ALIASES: Record<string, string> = { tnet: 'app', tnetstring: 'app', default: 'app' };

class StartupExit extends Error {}

/**
 * Start mongrel2. Ports are picked free just before, so another process may grab one in between:
 * when mongrel2 exits during startup, try again with new ports (3 attempts).
 */
export async function startMongrel2(options: Mongrel2Options = {}): Promise<Mongrel2Handle> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (err) {
      if (!(err instanceof StartupExit) || attempt >= 3) throw err;
    }
  }
}

async function startOnce(options: Mongrel2Options): Promise<Mongrel2Handle> {
  installExitHook();
  const bindAddr = options.bindAddr ?? '127.0.0.1';
  const handlerOpts = options.handlers ?? DEFAULT_HANDLERS;
  if (handlerOpts.length === 0) throw new Error('startMongrel2: at least one handler is needed');
  const names = new Set<string>();
  for (const h of handlerOpts) {
    if (names.has(h.name)) throw new Error(`startMongrel2: duplicate handler name ${h.name}`);
    names.add(h.name);
    if (h.sendIdent !== undefined && !/^[A-Za-z0-9-]+$/.test(h.sendIdent)) {
      throw new Error(`startMongrel2: send_ident ${JSON.stringify(h.sendIdent)} must match [A-Za-z0-9-]+`);
    }
  }

  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wsgid-m2-'));
  const uuid = randomUUID();
  const netns = options.netns;
  const connectHost = bindAddr === '0.0.0.0' ? '127.0.0.1' : bindAddr;
  const [port, ...zmqPorts] = await freePorts(1 + 2 * handlerOpts.length, netns ? '127.0.0.1' : connectHost);
  const zmqHost = netns ? connectHost : '127.0.0.1';
  const tag = randomBytes(3).toString('hex');

  const endpoints = new Map<string, Mongrel2HandlerEndpoints>();
  handlerOpts.forEach((h, i) => {
    endpoints.set(h.name, {
      recv: `tcp://${zmqHost}:${zmqPorts[2 * i]}`,
      send: `tcp://${zmqHost}:${zmqPorts[2 * i + 1]}`,
      sendIdent: h.sendIdent ?? `${sanitizeIdent(h.name)}-${tag}`,
      recvIdent: h.recvIdent ?? '',
      route: h.route,
      protocol: h.protocol ?? 'json',
    });
  });

  // In test mode (non-root), mongrel2 does not prefix log paths or upload.temp_store with the chroot:
  // make them absolute paths inside the folder ourselves.
  const inDir = (p: string) => (isRoot ? p : path.join(dir, p));
  const settings: Record<string, string | number> = { ...(options.settings ?? {}) };
  if (!isRoot && typeof settings['upload.temp_store'] === 'string' && settings['upload.temp_store'].startsWith('/')) {
    settings['upload.temp_store'] = inDir(settings['upload.temp_store']);
  }
  settings['server.daemonize'] = 0;

  const lines: string[] = [];
  handlerOpts.forEach((h, i) => {
    const e = endpoints.get(h.name)!;
    lines.push(
      `h${i} = Handler(send_spec=${pyString(e.recv)}, send_ident=${pyString(e.sendIdent)},\n` +
        `    recv_spec=${pyString(e.send)}, recv_ident=${pyString(e.recvIdent)}, protocol=${pyString(e.protocol)})`,
    );
  });
  const routeList = handlerOpts.map((h, i) => `${pyString(h.route)}: h${i}`);
  if (options.staticDir) {
    lines.push(`static_dir = Dir(base="static/", index_file="index.html", default_ctype="text/plain")`);
    routeList.push(`${pyString(options.staticDir.route)}: static_dir`);
  }
  const routes = routeList.join(', ');
  lines.push(
    `main = Server(uuid=${pyString(uuid)}, chroot="./",\n` +
      `    access_log=${pyString(inDir('/logs/access.log'))}, error_log=${pyString(inDir('/logs/error.log'))},\n` +
      `    pid_file="/run/mongrel2.pid", default_host="localhost", name="main",\n` +
      `    bind_addr=${pyString(bindAddr)}, port=${port},\n` +
      `    hosts=[Host(name="localhost", routes={${routes}})])`,
  );
  lines.push(`settings = {${Object.entries(settings).map(([k, v]) => `${pyString(k)}: ${pyValue(v)}`).join(', ')}}`);
  lines.push('servers = [main]', '');

  await Promise.all(['logs', 'run', 'tmp', 'static'].map((d) => mkdir(path.join(dir, d))));
  for (const [name, text] of Object.entries(options.staticDir?.files ?? {})) await writeFile(path.join(dir, 'static', name), text);
  await writeFile(path.join(dir, 'mongrel2.conf'), lines.join('\n'));
  const { child, stop, readLog, isExited } = await launch(dir, uuid, { connectHost, port, netns, startTimeoutMs: options.startTimeoutMs });

  const resolveName = (name: string): string =>
    endpoints.has(name) ? name : options.handlers === undefined && DEFAULT_ALIASES[name] ? DEFAULT_ALIASES[name]! : name;

  return {
    port,
    baseUrl: `http://${connectHost}:${port}`,
    dir,
    uuid,
    pid: child.pid ?? -1,
    chrooted: isRoot,
    chroot: isRoot ? dir : '',
    handlerNames: handlerOpts.map((h) => h.name),
    handler(name: string): Mongrel2HandlerEndpoints {
      const e = endpoints.get(resolveName(name));
      if (!e) throw new Error(`mongrel2 helper: no handler ${JSON.stringify(name)}; known: ${[...endpoints.keys()].join(', ')}`);
      return { ...e };
    },
    resolvePath(reported: string): string {
      if (!isRoot) return reported; // test mode: paths are real (we made them absolute inside dir)
      return path.join(dir, reported.replace(/^\/+/, ''));
    },
    stop,
    log: readLog,
    get exited() {
      return isExited();
    },
  };
}

/** A mongrel2 run from a config file someone else wrote (e.g. `wsgid mongrel2-config`). */
export interface Mongrel2ConfigRun {
  readonly port: number;
  readonly baseUrl: string;
  readonly pid: number;
  /** As Mongrel2Handle.stop; removes `dir` too. */
  stop(options?: { graceful?: boolean }): Promise<void>;
  log(): string;
  readonly exited: boolean;
}

/**
 * Load `dir/mongrel2.conf` with `m2sh load` and run its server `uuid` in `dir` (logs/, run/ and tmp/
 * are created), as an admin would by hand; resolves once `port` accepts connections. `dir` is
 * removed when it stops (and when the test process exits).
 */
export async function startMongrel2WithConfig(dir: string, uuid: string, port: number, options: { startTimeoutMs?: number } = {}): Promise<Mongrel2ConfigRun> {
  installExitHook();
  await Promise.all(['logs', 'run', 'tmp'].map((d) => mkdir(path.join(dir, d), { recursive: true })));
  const { child, stop, readLog, isExited } = await launch(dir, uuid, { connectHost: '127.0.0.1', port, startTimeoutMs: options.startTimeoutMs });
  return {
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    pid: child.pid ?? -1,
    stop,
    log: readLog,
    get exited() {
      return isExited();
    },
  };
}

interface Launched {
  child: ChildProcess;
  stop(options?: { graceful?: boolean }): Promise<void>;
  readLog(): string;
  isExited(): boolean;
}

/**
 * `m2sh load` dir/mongrel2.conf into dir/config.sqlite, run mongrel2 (server `uuid`) in `dir` and
 * wait for its HTTP port. On failure the folder is removed.
 */
async function launch(
  dir: string,
  uuid: string,
  options: { connectHost: string; port: number; netns?: string; startTimeoutMs?: number },
): Promise<Launched> {
  const { connectHost, port, netns } = options;
  try {
    await execFileP(M2SH_BIN, ['load', '-config', 'mongrel2.conf', '-db', 'config.sqlite'], dir);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  // `ip netns exec` execs the command in place: the child's pid is mongrel2's.
  const [command, args] = netns
    ? ['ip', ['netns', 'exec', netns, MONGREL2_BIN, 'config.sqlite', uuid]]
    : [MONGREL2_BIN, ['config.sqlite', uuid]];
  const child = spawn(command, args, { cwd: dir, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const entry = { child, dir };
  live.add(entry);
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (output += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (output += s));
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
    child.once('error', (err) => {
      output += `\nspawn error: ${err.message}`;
      exited = true;
      resolve();
    });
  });
  // Don't let a forgotten mongrel2 keep the test runner alive.
  child.unref();
  (child.stdout as unknown as { unref?: () => void }).unref?.();
  (child.stderr as unknown as { unref?: () => void }).unref?.();

  const errorLogPath = path.join(dir, 'logs', 'error.log');
  const readLog = (): string => {
    let fileLog = '';
    try {
      // sync read keeps log() simple to use in assertion messages
      fileLog = readFileSync(errorLogPath, 'utf8');
    } catch {
      /* not there (yet) */
    }
    return `${fileLog}${output ? `\n--- mongrel2 stdout/stderr ---\n${output}` : ''}`;
  };

  let stopping: Promise<void> | undefined;
  const waitExit = (ms: number) => Promise.race([exitPromise.then(() => true), sleep(ms).then(() => exited)]);
  const stop = (stopOptions: { graceful?: boolean } = {}): Promise<void> => {
    stopping ??= (async () => {
      if (!exited) {
        // mongrel2's graceful shutdown (first SIGINT) takes ~500 ms even when idle; a second SIGINT
        // ("SIGINT again to EXIT NOW") ends it in ~25 ms. Tests don't need the grace by default.
        child.kill('SIGINT');
        if (!(await waitExit(stopOptions.graceful ? 3000 : 30))) {
          child.kill('SIGINT');
          if (!(await waitExit(2000))) {
            child.kill('SIGKILL');
            await exitPromise;
          }
        }
      }
      live.delete(entry);
      await rm(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  // Wait for the HTTP port.
  const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
  for (;;) {
    if (exited) {
      const log = readLog();
      live.delete(entry);
      await rm(dir, { recursive: true, force: true });
      throw new StartupExit(`mongrel2 exited during startup (code ${child.exitCode}, signal ${child.signalCode}):\n${log}`);
    }
    if (netns ? await canConnectInNetns(netns, connectHost, port) : await canConnect(connectHost, port)) break;
    if (Date.now() > deadline) {
      const log = readLog();
      await stop();
      throw new Error(`mongrel2 did not open port ${port} in time:\n${log}`);
    }
    await sleep(25);
  }

  return { child, stop, readLog, isExited: () => exited };
}

/** Read the error log asynchronously (for tests that want to wait for a line). */
export async function readMongrel2Log(handle: Mongrel2Handle): Promise<string> {
  try {
    return await readFile(path.join(handle.dir, 'logs', 'error.log'), 'utf8');
  } catch {
    return '';
  }
}
