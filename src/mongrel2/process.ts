/**
 * The private mongrel2 of `wsgid dev`: a temporary folder (0700) that is its chroot, ipc://
 * endpoints inside it, the config of config.ts loaded with `m2sh load`, mongrel2 started in it and
 * stopped (then the folder removed) by `stop()`.
 *
 * Run as root, mongrel2 chroots into the folder and runs as its owner (root: we made it). Run as
 * another user it cannot chroot and runs in "test mode": it stays in the folder (its cwd, so the
 * relative ipc:// paths are the same files) but does not prefix the log paths and the upload
 * template with the chroot, so those are given as absolute paths inside the folder; and uploads
 * are then reported with their real path (wsgid needs no --mongrel2-chroot).
 *
 * mongrel2 runs in a process group of its own, so a Ctrl-C on the terminal reaches wsgid only and
 * mongrel2 is stopped after it, still answering while wsgid drains.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { WsgidError } from '../errors.js';
import { appServerConfig, renderMongrel2Config } from './config.js';

export interface PrivateMongrel2Options {
  /** Names the server and seeds its uuid (the app folder). */
  readonly seed: string;
  readonly port: number;
  readonly bindAddr: string;
  /** Default: MONGREL2_BIN / M2SH_BIN from the environment, else `mongrel2` / `m2sh` on PATH. */
  readonly mongrel2Bin?: string;
  readonly m2shBin?: string;
  /** How long to wait for the HTTP port (default 15 s). */
  readonly startTimeoutMs?: number;
  /** Folders mongrel2 serves itself at `route` (ending in '/'): copied into its folder (its chroot
   *  as root, where a Dir route must lie) when it starts. */
  readonly staticDirs?: ReadonlyArray<{ readonly route: string; readonly from: string }>;
}

export interface PrivateMongrel2 {
  readonly dir: string;
  readonly pid: number;
  readonly port: number;
  /** What wsgid connects to: --recv and --send. */
  readonly recv: string;
  readonly send: string;
  /** --mongrel2-chroot for wsgid: the folder when mongrel2 chrooted, '' in test mode. */
  readonly chroot: string;
  /** SIGINT twice (mongrel2's "exit now"), SIGKILL after 3 s; removes the folder. Idempotent. */
  stop(): Promise<void>;
  /** Resolves when mongrel2 exits (by itself or stopped). */
  readonly exited: Promise<void>;
  /** mongrel2's error.log and output, for error messages. */
  log(): string;
}

const INSTALL_HINT = 'install mongrel2 (Debian: apt-get install mongrel2-core), or set MONGREL2_BIN and M2SH_BIN';

function childEnv(): NodeJS.ProcessEnv {
  // mongrel2 complains at exit ("getlogin failed and no LOGNAME") without LOGNAME.
  let user = 'root';
  try {
    user = os.userInfo().username;
  } catch {
    /* keep root */
  }
  return { ...process.env, LOGNAME: process.env.LOGNAME ?? user };
}

function m2shLoad(m2sh: string, dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(m2sh, ['load', '-config', 'mongrel2.conf', '-db', 'config.sqlite'], { cwd: dir, env: childEnv(), timeout: 30_000 }, (error, stdout, stderr) => {
      if (!error) return resolve();
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
      reject(
        new WsgidError(
          missing ? `${m2sh} not found: ${INSTALL_HINT}` : `m2sh load refused the generated config: ${`${stdout}${stderr}`.trim() || error.message}`,
          'WSGID_ERR_MONGREL2',
        ),
      );
    });
  });
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean): void => {
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.setTimeout(1000, () => done(false));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Every private mongrel2 still running when this process exits is killed (a crash leaves none). */
const running = new Set<ChildProcess>();
let exitHook = false;
function killOnExit(child: ChildProcess): void {
  running.add(child);
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const c of running) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
}

export async function startPrivateMongrel2(options: PrivateMongrel2Options): Promise<PrivateMongrel2> {
  const mongrel2Bin = options.mongrel2Bin ?? process.env.MONGREL2_BIN ?? 'mongrel2';
  const m2shBin = options.m2shBin ?? process.env.M2SH_BIN ?? 'm2sh';
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsgid-dev-'));
  const remove = (): void => rmSync(dir, { recursive: true, force: true });
  try {
    for (const sub of ['logs', 'run', 'tmp']) mkdirSync(path.join(dir, sub), { mode: 0o700 });
    const dirs = (options.staticDirs ?? []).map(({ route, from }, i) => {
      const base = `static-${i}/`;
      cpSync(from, path.join(dir, base), { recursive: true, dereference: true });
      return { route, base };
    });
    const inside = (p: string): string => (isRoot ? p : path.join(dir, p));
    const recv = `ipc://${path.join(dir, 'run', 'requests')}`;
    const send = `ipc://${path.join(dir, 'run', 'replies')}`;
    const inputs = appServerConfig({
      root: options.seed,
      recv: [recv],
      send: [send],
      chroot: dir,
      port: options.port,
      host: 'localhost',
      bindAddr: options.bindAddr,
      dirs,
      paths: { accessLog: inside('/logs/access.log'), errorLog: inside('/logs/error.log'), pidFile: '/run/mongrel2.pid', uploadTemplate: inside('/tmp/upload.XXXXXX') },
      header: [`the private mongrel2 of wsgid dev for ${options.seed}`],
    });
    writeFileSync(path.join(dir, 'mongrel2.conf'), renderMongrel2Config(inputs), { mode: 0o600 });
    await m2shLoad(m2shBin, dir);

    const child = spawn(mongrel2Bin, ['config.sqlite', inputs.uuid], { cwd: dir, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    killOnExit(child);
    let output = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (output += s));
    let spawnError: NodeJS.ErrnoException | undefined;
    let hasExited = false;
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => {
        hasExited = true;
        running.delete(child);
        resolve();
      });
      child.once('error', (error: NodeJS.ErrnoException) => {
        spawnError = error;
        hasExited = true;
        running.delete(child);
        resolve();
      });
    });
    const log = (): string => {
      let text = '';
      try {
        text = readFileSync(path.join(dir, 'logs', 'error.log'), 'utf8');
      } catch {
        /* not written (yet) */
      }
      return `${text}${output}`.trim();
    };

    let stopping: Promise<void> | undefined;
    const stop = (): Promise<void> => {
      stopping ??= (async () => {
        if (!hasExited) {
          // The first SIGINT is mongrel2's graceful stop (~0.5 s even when idle), the second its "exit now".
          child.kill('SIGINT');
          await Promise.race([exited, sleep(50)]);
          if (!hasExited) child.kill('SIGINT');
          await Promise.race([exited, sleep(3000)]);
          if (!hasExited) child.kill('SIGKILL');
          await exited;
        }
        remove();
      })();
      return stopping;
    };

    const host = options.bindAddr === '0.0.0.0' ? '127.0.0.1' : options.bindAddr;
    const deadline = Date.now() + (options.startTimeoutMs ?? 15_000);
    while (!(await canConnect(host, options.port))) {
      if (hasExited || Date.now() > deadline) {
        const why = spawnError?.code === 'ENOENT' ? `${mongrel2Bin} not found: ${INSTALL_HINT}` : `mongrel2 ${hasExited ? 'exited' : 'did not open its port'}: ${log()}`;
        await stop();
        throw new WsgidError(why, 'WSGID_ERR_MONGREL2');
      }
      await sleep(50);
    }
    return { dir, pid: child.pid ?? -1, port: options.port, recv, send, chroot: isRoot ? dir : '', stop, exited, log };
  } catch (error) {
    remove();
    throw error;
  }
}

/** Is `port` free on `host` (can we listen on it now)? */
export function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** A port the OS hands out as free on `host`. */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}
