/**
 * A worker's memory for --max-memory and the status file: the resident set of this Node process
 * plus that of its child processes (the Python process of a WSGI app), read from /proc
 * (`/proc/self/task/<pid>/children`, then each child's VmRSS). Elsewhere than Linux, Node's alone.
 */
import { readFileSync } from 'node:fs';

function childPids(): number[] {
  try {
    // Children forked by the main thread (libuv spawns from it) are listed under its task.
    return readFileSync(`/proc/self/task/${process.pid}/children`, 'utf8')
      .split(' ')
      .filter((p) => /^\d+$/.test(p))
      .map(Number);
  } catch {
    return [];
  }
}

/** VmRSS of a process in bytes (0 when it is gone or unreadable). */
function residentBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Bytes resident in this process and its direct children. */
export function processTreeRss(): number {
  let total = process.memoryUsage.rss();
  for (const pid of childPids()) total += residentBytes(pid);
  return total;
}
