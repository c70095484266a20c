/**
 * CPU time of processes from /proc (Linux only), in seconds.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let clkTck: number | undefined;
function ticksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** utime + stime of one process in seconds, or undefined if it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Fields after "(comm)": state is field 3, utime field 14, stime field 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
}

/** pid and all its live descendants. */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    const p = out[i]!;
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      try {
        const children = readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim();
        if (children) for (const c of children.split(/\s+/)) out.push(Number(c));
      } catch {
        /* task gone */
      }
    }
  }
  return out;
}

/** CPU seconds per pid for the whole tree under `pid`. */
export function treeCpu(pid: number): Map<number, number> {
  const m = new Map<number, number>();
  for (const p of processTree(pid)) {
    const c = cpuSeconds(p);
    if (c !== undefined) m.set(p, c);
  }
  return m;
}

/** Sum of CPU seconds used between two treeCpu() samples (processes in both). */
export function cpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [p, c] of after) sum += c - (before.get(p) ?? 0);
  return sum;
}

/** The command name of a process (/proc/PID/comm), or undefined if it is gone. */
export function commOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** CPU seconds used between two treeCpu() samples by the processes whose command name matches. */
export function cpuDeltaOf(before: Map<number, number>, after: Map<number, number>, names: RegExp): number {
  let sum = 0;
  for (const [p, c] of after) if (names.test(commOf(p) ?? '')) sum += c - (before.get(p) ?? 0);
  return sum;
}

/** Resident set size of one process in MB (VmRSS), or undefined if it is gone. */
export function rssMb(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * RSS of a server's process tree: `tree`, all of it; `serving`, the processes that serve requests —
 * the tree less its root when the root has children (wsgid's master, gunicorn's arbiter only
 * supervise), else the root itself (a single-process server).
 */
export function rssOf(pid: number): { tree?: number; serving?: number } {
  const pids = processTree(pid);
  const sum = (ps: number[]) => {
    let total = 0;
    for (const p of ps) total += rssMb(p) ?? 0;
    return total;
  };
  const tree = sum(pids);
  return { tree, serving: pids.length > 1 ? sum(pids.slice(1)) : tree };
}
