/**
 * Run wrk and parse its report (wrk 4.x text output with --latency).
 */
import { spawn } from 'node:child_process';

export const WRK_BIN = process.env.WRK_BIN ?? '/usr/bin/wrk';

export interface WrkOptions {
  url: string;
  threads: number;
  connections: number;
  /** Seconds. */
  duration: number;
  /** Lua script (-s). */
  script?: string;
  /** Per-request timeout in seconds (--timeout), default 5. */
  timeout?: number;
}

export interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  /** Latency percentiles, in milliseconds. */
  p50: number;
  p75: number;
  p90: number;
  p99: number;
  /** Socket errors: connect + read + write + timeout. */
  errors: { connect: number; read: number; write: number; timeout: number };
  non2xx: number;
  raw: string;
}

function toMs(value: string, unit: string): number {
  const v = Number(value);
  switch (unit) {
    case 'us':
      return v / 1000;
    case 'ms':
      return v;
    case 's':
      return v * 1000;
    case 'm':
      return v * 60_000;
    case 'h':
      return v * 3_600_000;
    default:
      throw new Error(`unknown wrk time unit ${unit}`);
  }
}

/** Parse wrk's text report. Throws with the text when something essential is missing. */
export function parseWrk(out: string): WrkResult {
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, 'm').exec(out);
    if (!m) throw new Error(`wrk output has no ${p}% latency:\n${out}`);
    return toMs(m[1]!, m[2]!);
  };
  const total = /^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),/m.exec(out);
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
  if (!total || !rps) throw new Error(`cannot parse wrk output:\n${out}`);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  return {
    requests: Number(total[1]),
    seconds: toMs(total[2]!, total[3]!) / 1000,
    rps: Number(rps[1]),
    p50: pct('50'),
    p75: pct('75'),
    p90: pct('90'),
    p99: pct('99'),
    errors: {
      connect: Number(sock?.[1] ?? 0),
      read: Number(sock?.[2] ?? 0),
      write: Number(sock?.[3] ?? 0),
      timeout: Number(sock?.[4] ?? 0),
    },
    non2xx: Number(non2xx?.[1] ?? 0),
    raw: out,
  };
}

/** Run wrk to completion; rejects if it fails or runs far past its duration. */
export function runWrk(opts: WrkOptions): Promise<WrkResult> {
  const args = [
    `-t${opts.threads}`,
    `-c${opts.connections}`,
    `-d${opts.duration}s`,
    `--timeout`,
    `${opts.timeout ?? 5}s`,
    '--latency',
    ...(opts.script ? ['-s', opts.script] : []),
    opts.url,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(WRK_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    const guard = setTimeout(() => child.kill('SIGKILL'), (opts.duration + 30) * 1000);
    child.on('error', (e) => {
      clearTimeout(guard);
      reject(e);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      if (code !== 0) {
        reject(new Error(`wrk ${args.join(' ')} exited with ${code ?? signal}:\n${out}${err}`));
        return;
      }
      try {
        resolve(parseWrk(out));
      } catch (e) {
        reject(e);
      }
    });
  });
}
