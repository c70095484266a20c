/**
 * Which process a pid names right now, so a pid file left by a dead process never gets a live,
 * unrelated process signalled after the kernel reuses the pid. The identity is
 * the process's start time: field 22 of /proc/<pid>/stat, in clock ticks since boot, fixed for the
 * life of a process and different for the next process given the same pid.
 */
import { readFileSync, readlinkSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';

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

/**
 * The entry scripts a master runs: the package's bin (dist/src/cli/main.js, absolute for a daemon,
 * as typed for --no-daemon) or a `wsgid` launcher (the bin symlink, run through its shebang).
 */
function isWsgidScript(arg: string): boolean {
  return arg === 'cli/main.js' || arg.endsWith('/cli/main.js') || path.basename(arg) === 'wsgid';
}

/** How whyNotMasterOf's answer begins when /proc could not be read (no verdict: see provenNotMasterOf). */
const UNREADABLE = 'its /proc entry cannot be read';

/**
 * Why `pid` is not a wsgid master of the app folder `appRoot`, or undefined when it is one. A pid
 * file is the app user's to write (docs/SECURITY.md), so before a root CLI signals the pid it names,
 * the process itself must show it is a master of this folder: node running wsgid's CLI (exe and
 * cmdline, set at exec: a process cannot take them over, and a setuid program's exe is not node)
 * with the folder as its working directory (the master chdirs there). Reading another user's
 * /proc/<pid>/exe and cwd needs root or that user: undefined is never returned on a guess.
 */
export function whyNotMasterOf(pid: number, appRoot: string): string | undefined {
  let exe: string;
  let cmdline: string[];
  let cwd: Stats;
  try {
    exe = readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, '');
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    cwd = statSync(`/proc/${pid}/cwd`);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' || e.code === 'ESRCH') return 'it has exited';
    return `${UNREADABLE} (${e.code ?? e.message}; run the command as root or as the user the master runs as)`;
  }
  const name = path.basename(exe);
  if (!/^node(js)?[\d.]*$/.test(name) && name !== path.basename(process.execPath)) return `it runs ${exe}, not node`;
  if (!cmdline.slice(1).some(isWsgidScript)) return `its command line is not wsgid's (${cmdline.filter(Boolean).join(' ').slice(0, 120)})`;
  let folder: Stats;
  try {
    folder = statSync(appRoot);
  } catch {
    return `the app folder ${appRoot} cannot be read`;
  }
  if (cwd.dev === folder.dev && cwd.ino === folder.ino) return undefined;
  // A `wsgid start` still daemonizing holds a pid file too, from wherever it was run: its folder
  // is its --app-path resolved against its working folder, as wsgid itself resolves it.
  const named = appPathArgument(cmdline);
  if (named !== undefined) {
    try {
      const resolved = statSync(path.resolve(readlinkSync(`/proc/${pid}/cwd`), named));
      if (resolved.dev === folder.dev && resolved.ino === folder.ino) return undefined;
    } catch {
      /* gone, or not a folder: not this app's */
    }
  }
  return `its working folder is not ${appRoot}${named === undefined ? '' : ` and its --app-path=${named} does not name it`}`;
}

/**
 * Why `pid` is shown not to be a wsgid master of `appRoot`, or undefined when it is one or when
 * /proc cannot tell (another user's process, without root): for reports, which must not call a
 * forged pid file "running" but have nothing to refuse.
 */
export function provenNotMasterOf(pid: number, appRoot: string): string | undefined {
  const why = whyNotMasterOf(pid, appRoot);
  return why === undefined || why.startsWith(UNREADABLE) ? undefined : why;
}

/** The value of `--app-path=DIR` or `--app-path DIR` in a command line (the last one wins). */
function appPathArgument(cmdline: readonly string[]): string | undefined {
  let found: string | undefined;
  for (let i = 0; i < cmdline.length; i++) {
    const arg = cmdline[i]!;
    if (arg.startsWith('--app-path=')) found = arg.slice('--app-path='.length);
    else if (arg === '--app-path' && i + 1 < cmdline.length) found = cmdline[i + 1];
  }
  return found;
}
