/**
 * Test helper: run the built wsgid CLI (`node dist/src/cli/main.js ...args`) in the foreground.
 *
 *   const w = await startWsgid(['--no-daemon', `--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`],
 *                              { readyUrl: `${m2.baseUrl}/` });
 *   ...
 *   const code = await w.stop();
 *
 * "Ready" = a probe request through mongrel2 got any HTTP answer (mongrel2 holds requests until a
 * handler connects). Without `readyUrl`, startWsgid returns once the process is spawned; call
 * `waitForHttp()` yourself. Every process still running when the test process exits gets SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitForHttp, type HttpResponse } from './http.js';

/** The repository root (this file is dist/test/helpers/wsgid.js once built). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const WSGID_CLI = path.join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

export interface StartWsgidOptions {
  cwd?: string;
  /** Added to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Poll this URL until it answers; startWsgid rejects (and kills wsgid) if it doesn't in time. */
  readyUrl?: string;
  /** Default 15 000 ms. */
  readyTimeoutMs?: number;
  /** Echo wsgid's output to this process's stderr as it comes (debugging). Default: env WSGID_TEST_ECHO=1. */
  echo?: boolean;
  /** Extra node flags, e.g. ['--enable-source-maps']. */
  nodeArgs?: string[];
  /**
   * A command prefix that execs node in place, e.g. ['ip', 'netns', 'exec', 'ns1'] to run wsgid in a
   * network namespace (the pid stays wsgid's, so stop() signals it directly).
   */
  wrap?: string[];
}

export interface WsgidProcess {
  readonly process: ChildProcess;
  readonly pid: number;
  /** The probe response when readyUrl was given. */
  readonly readyResponse: HttpResponse | undefined;
  /** Send `signal` (default SIGTERM), wait for exit; SIGKILL after `timeoutMs` (default 10 s).
   *  Resolves to the exit code, or 128+signo if killed by a signal. Idempotent. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number>;
  /** Resolves with the exit code (as stop()) whenever it exits. */
  readonly exited: Promise<number>;
  readonly hasExited: boolean;
  /** Everything written to stdout and stderr so far (interleaved). */
  output(): string;
  /** Wait until output() matches (rejects after timeoutMs with the output). */
  waitForOutput(pattern: RegExp | string, timeoutMs?: number): Promise<string>;
}

const live = new Set<ChildProcess>();
let hook = false;
function installExitHook(): void {
  if (hook) return;
  hook = true;
  process.on('exit', () => {
    for (const c of live) {
      try {
        if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
}

function codeOf(c: ChildProcess): number {
  if (c.exitCode !== null) return c.exitCode;
  if (c.signalCode) {
    const signals: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGTERM: 15, SIGABRT: 6 };
    return 128 + (signals[c.signalCode] ?? 0);
  }
  return -1;
}

export async function startWsgid(args: string[], opts: StartWsgidOptions = {}): Promise<WsgidProcess> {
  installExitHook();
  const echo = opts.echo ?? process.env.WSGID_TEST_ECHO === '1';
  const argv = [...(opts.wrap ?? []), process.execPath, ...(opts.nodeArgs ?? []), WSGID_CLI, ...args];
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: opts.cwd ?? REPO_ROOT,
    env: { ...process.env, ...(opts.env ?? {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let out = '';
  const outWaiters = new Set<() => void>();
  const onData = (s: string) => {
    out += s;
    if (echo) process.stderr.write(s);
    for (const w of outWaiters) w();
  };
  child.stdout!.setEncoding('utf8').on('data', onData);
  child.stderr!.setEncoding('utf8').on('data', onData);

  let hasExited = false;
  const exited = new Promise<number>((resolve) => {
    child.once('exit', () => {
      hasExited = true;
      live.delete(child);
      resolve(codeOf(child));
      for (const w of outWaiters) w();
    });
    child.once('error', (err) => {
      out += `\nspawn error: ${err.message}`;
      hasExited = true;
      live.delete(child);
      resolve(-1);
    });
  });

  let stopping: Promise<number> | undefined;
  const stop = (signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<number> => {
    stopping ??= (async () => {
      if (!hasExited) {
        child.kill(signal);
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([
          exited.then(() => false),
          new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs))),
        ]);
        clearTimeout(timer);
        if (timedOut && !hasExited) child.kill('SIGKILL');
      }
      return exited;
    })();
    return stopping;
  };

  const waitForOutput = async (pattern: RegExp | string, timeoutMs = 10_000): Promise<string> => {
    const test = () => (typeof pattern === 'string' ? out.includes(pattern) : pattern.test(out));
    const deadline = Date.now() + timeoutMs;
    while (!test()) {
      const left = deadline - Date.now();
      if (left <= 0 || hasExited) {
        throw new Error(`wsgid output did not match ${String(pattern)}${hasExited ? ' (it exited)' : ''}:\n${out}`);
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          outWaiters.delete(done);
          resolve();
        };
        const t = setTimeout(done, left);
        outWaiters.add(done);
      });
    }
    return out;
  };

  let readyResponse: HttpResponse | undefined;
  if (opts.readyUrl) {
    try {
      readyResponse = await waitForHttp(opts.readyUrl, opts.readyTimeoutMs ?? 15_000, {
        abort: () => (hasExited ? `wsgid exited with ${codeOf(child)}` : undefined),
      });
    } catch (err) {
      await stop('SIGKILL', 2000);
      throw new Error(`${(err as Error).message}\n--- wsgid output ---\n${out}`);
    }
  }

  return {
    process: child,
    pid: child.pid ?? -1,
    readyResponse,
    stop,
    exited,
    get hasExited() {
      return hasExited;
    },
    output: () => out,
    waitForOutput,
  };
}

/** The usual arguments for serving `appPath` on a handler from the mongrel2 helper. */
export function wsgidArgs(
  handler: { recv: string; send: string },
  appPath: string,
  extra: string[] = [],
): string[] {
  return ['--no-daemon', `--app-path=${appPath}`, `--recv=${handler.recv}`, `--send=${handler.send}`, ...extra];
}

export { waitForHttp };
