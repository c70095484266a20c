/**
 * Which process a pid names right now, so a pid file left by a dead process never gets a live,
 * unrelated process signalled after the kernel reuses the pid (issue 14 item 4). The identity is
 * the process's start time: field 22 of /proc/<pid>/stat, in clock ticks since boot, fixed for the
 * life of a process and different for the next process given the same pid.
 */
import { readFileSync } from 'node:fs';

/** USER_HZ: the unit of /proc start times; 100 on every Linux ABI Node runs on. */
const TICKS_PER_SECOND = 100;

interface ProcStat {
  /** Field 3: R, S, D, Z (zombie), X (dead)… */
  state: string;
  /** Field 22: start time in clock ticks since boot. */
  startTicks: number;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const startTicks = Number(fields[22 - 3]);
    return Number.isSafeInteger(startTicks) ? { state: fields[0] ?? '', startTicks } : undefined;
  } catch {
    return undefined;
  }
}

/** The start time of `pid` in clock ticks since boot, or undefined (gone, or no /proc). */
export function processStartTicks(pid: number): number | undefined {
  return readStat(pid)?.startTicks;
}

/** A zombie (or dying) process: it exited, nobody reaped it yet; no master, whatever its pid file says. */
export function isZombie(pid: number): boolean {
  const state = readStat(pid)?.state;
  return state === 'Z' || state === 'X';
}

let bootTimeMs: number | undefined;

/** When `pid` started, in ms since the epoch, or undefined. */
export function processStartMs(pid: number): number | undefined {
  const ticks = processStartTicks(pid);
  if (ticks === undefined) return undefined;
  if (bootTimeMs === undefined) {
    try {
      const btime = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'));
      if (!btime) return undefined;
      bootTimeMs = Number(btime[1]) * 1000;
    } catch {
      return undefined;
    }
  }
  return bootTimeMs + (ticks * 1000) / TICKS_PER_SECOND;
}

/** /proc is readable: identities can be checked (otherwise only kill(pid, 0) is left). */
export function canCheckIdentity(): boolean {
  return processStartTicks(process.pid) !== undefined;
}
