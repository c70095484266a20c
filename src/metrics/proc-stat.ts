/**
 * Memory and CPU of processes, read from Linux's /proc (the master samples itself, its workers and
 * their children, e.g. a WSGI worker's Python process, once per tick). Parsing and the CPU rate are
 * pure; `ProcSampler` reads the files and remembers the previous sample per pid.
 * Elsewhere than Linux nothing is readable and the numbers are left out.
 */
import { readFileSync } from 'node:fs';

/** Clock ticks per second in /proc/<pid>/stat (USER_HZ: 100 on every Linux ABI Node runs on). */
export const USER_HZ = 100;

export interface ProcTimes {
  /** utime + stime, in clock ticks. */
  ticks: number;
  /** Process start, in clock ticks after boot (tells a reused pid apart). */
  startTicks: number;
}

/**
 * Fields of /proc/<pid>/stat. The command name (field 2) is in parentheses and may contain spaces
 * and parentheses itself: parse after the last ')'.
 */
export function parseStat(text: string): ProcTimes | undefined {
  const end = text.lastIndexOf(')');
  if (end < 0) return undefined;
  // After ") ": field 3 (state) is index 0, so field n is index n - 3.
  const f = text.slice(end + 2).trim().split(/\s+/);
  const utime = Number(f[14 - 3]);
  const stime = Number(f[15 - 3]);
  const start = Number(f[22 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime) || !Number.isFinite(start)) return undefined;
  return { ticks: utime + stime, startTicks: start };
}

/** Resident pages: field 2 of /proc/<pid>/statm. */
export function parseStatmResident(text: string): number | undefined {
  const resident = Number(text.trim().split(/\s+/)[1]);
  return Number.isFinite(resident) ? resident : undefined;
}

/** CPU use between two samples, in percent of one core (may exceed 100 with threads). */
export function cpuPercent(prev: { ticks: number; at: number }, cur: { ticks: number; at: number }): number {
  const seconds = (cur.at - prev.at) / 1000;
  if (seconds <= 0) return 0;
  const used = (cur.ticks - prev.ticks) / USER_HZ;
  return Math.max(0, Math.round((used / seconds) * 1000) / 10);
}

export interface ProcSample {
  pid: number;
  /** Resident set size in bytes. */
  rss: number;
  /** CPU percent of one core since the previous sample of this pid (undefined on the first). */
  cpu?: number;
  /** Total CPU seconds used (user + system) since the process started. */
  cpuSeconds: number;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return undefined;
  }
}

/** Page size in bytes: what makes this process's statm agree with its own RSS (4096 on x86-64). */
function measurePageSize(): number {
  const pages = parseStatmResident(read('/proc/self/statm') ?? '');
  if (!pages) return 4096;
  const ratio = process.memoryUsage.rss() / pages;
  const size = 2 ** Math.round(Math.log2(ratio));
  return size >= 1024 && size <= 1 << 20 ? size : 4096;
}

export class ProcSampler {
  private readonly previous = new Map<number, { ticks: number; startTicks: number; at: number }>();
  private pageSize: number | undefined;

  /** Sample one process; undefined when it is gone or /proc is not readable. */
  sample(pid: number, now = Date.now()): ProcSample | undefined {
    const times = parseStat(read(`/proc/${pid}/stat`) ?? '');
    const pages = parseStatmResident(read(`/proc/${pid}/statm`) ?? '');
    if (times === undefined || pages === undefined) {
      this.previous.delete(pid);
      return undefined;
    }
    this.pageSize ??= measurePageSize();
    const prev = this.previous.get(pid);
    const cur = { ticks: times.ticks, startTicks: times.startTicks, at: now };
    this.previous.set(pid, cur);
    const sample: ProcSample = { pid, rss: pages * this.pageSize, cpuSeconds: times.ticks / USER_HZ };
    if (prev !== undefined && prev.startTicks === times.startTicks) sample.cpu = cpuPercent(prev, cur);
    return sample;
  }

  /** Child pids of `pid` (those its main thread started: a worker's Python process). */
  children(pid: number): number[] {
    const text = read(`/proc/${pid}/task/${pid}/children`);
    if (text === undefined) return [];
    return text
      .trim()
      .split(/\s+/)
      .filter((s) => s !== '')
      .map(Number)
      .filter((n) => Number.isInteger(n) && n > 0);
  }

  /** Forget pids not in `alive` (processes that are gone). */
  retain(alive: ReadonlySet<number>): void {
    for (const pid of this.previous.keys()) if (!alive.has(pid)) this.previous.delete(pid);
  }
}
