/**
 * Where a request's CPU goes, thread by thread: `node dist/bench/threads.js CASE [wsgid args…]`.
 *
 * Starts a real mongrel2 and a handler (CASE `bare`, or a hello app through wsgid: `fetch`, `wsgi`,
 * `asgi`), runs `wrk -t1 -c50` (1 s to warm up, then BENCH_DURATION s, default 5), and prints the
 * user and system CPU per request of every thread of mongrel2 and of the handler's process tree
 * (/proc/PID/task/TID/stat): mongrel2's main thread and its ZeroMQ I/O thread, the wsgid master's
 * JavaScript thread and its ZeroMQ I/O thread, the worker's, the Python bridge. The V8 profiler
 * sees only JavaScript threads and counts idle time; this shows the kernel and the I/O threads too
 * (docs/PERFORMANCE.md). `BENCH_NODE_ARGS` are given to wsgid's node (e.g. `--cpu-prof --cpu-prof-dir=DIR`).
 */
import { spawn, execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startMongrel2 } from '../test/helpers/mongrel2.js';
import { REPO_ROOT, WSGID_CLI } from '../test/helpers/wsgid.js';
import { processTree } from './proc.js';
import { WRK_BIN } from './wrk.js';

const APPS: Record<string, { file: string; args: string[] }> = {
  fetch: { file: 'hello.mjs', args: ['--wsgi-app=hello.mjs'] },
  wsgi: { file: 'hello_wsgi.py', args: ['--wsgi-app=hello_wsgi:application'] },
  asgi: { file: 'hello_asgi.py', args: ['--asgi=hello_asgi:app'] },
  express: { file: 'express-app.mjs', args: ['--wsgi-app=express-app.mjs'] },
};
const [which = 'fetch', ...extra] = process.argv.slice(2);
const DURATION = Number(process.env.BENCH_DURATION ?? 5);
/** Node options for wsgid (workers inherit them), e.g. `--cpu-prof --cpu-prof-dir=DIR`. */
const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim() || 100);

interface ThreadCpu {
  name: string;
  user: number;
  sys: number;
}

/** Every thread of `pids`, keyed by pid/tid, named "<process role>/<thread name>". */
function sample(pids: number[], roleOf: (pid: number) => string): Map<string, ThreadCpu> {
  const out = new Map<string, ThreadCpu>();
  for (const pid of pids) {
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      try {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        out.set(`${pid}/${tid}`, { name: `${roleOf(pid)}/${comm}`, user: Number(fields[11]), sys: Number(fields[12]) });
      } catch {
        /* thread gone */
      }
    }
  }
  return out;
}

async function main(): Promise<void> {
  const m2 = await startMongrel2({ handlers: [{ name: 'app', route: '/', protocol: 'tnetstring' }] });
  const h = m2.handler('app');
  let args: string[];
  let dir: string | undefined;
  if (which === 'bare') {
    args = [path.join(REPO_ROOT, 'dist', 'bench', 'bare-handler.js'), `--recv=${h.recv}`, `--send=${h.send}`];
  } else {
    const app = APPS[which];
    if (!app) throw new Error(`threads: CASE is bare, ${Object.keys(APPS).join(', ')}; not ${which}`);
    dir = path.join(REPO_ROOT, 'dist', 'bench', 'run-apps', `threads-${which}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(path.join(dir, 'app'), { recursive: true });
    cpSync(path.join(REPO_ROOT, 'bench', 'apps', app.file), path.join(dir, 'app', app.file));
    args = [...nodeArgs, WSGID_CLI, '--no-daemon', `--app-path=${dir}`, `--recv=${h.recv}`, `--send=${h.send}`, '--workers=1', ...app.args, ...extra];
  }
  const child = spawn(process.execPath, args, { stdio: 'ignore', cwd: dir ?? REPO_ROOT });
  try {
    const url = `${m2.baseUrl}/`;
    for (let i = 0; ; i++) {
      try {
        if (execFileSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', url], { encoding: 'utf8' }) === '200') break;
      } catch {
        /* not yet */
      }
      if (i > 200) throw new Error('the handler did not answer 200 within 20 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const roleOf = (pid: number) => (pid === m2.pid ? 'mongrel2' : pid === child.pid ? (which === 'bare' ? 'bare' : 'master') : (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'node' ? 'worker' : 'python'));
    const pids = () => [m2.pid, ...processTree(child.pid!)];
    execFileSync(WRK_BIN, ['-t1', '-c50', '-d1s', url]);
    const before = sample(pids(), roleOf);
    const report = execFileSync(WRK_BIN, ['-t1', '-c50', `-d${DURATION}s`, url], { encoding: 'utf8' });
    const after = sample(pids(), roleOf);
    const requests = Number(/(\d+) requests in/.exec(report)?.[1] ?? 0);
    if (requests === 0) throw new Error(`wrk made no request:\n${report}`);
    const byName = new Map<string, { user: number; sys: number }>();
    for (const [key, a] of after) {
      const b = before.get(key);
      if (!b) continue;
      const agg = byName.get(a.name) ?? { user: 0, sys: 0 };
      agg.user += a.user - b.user;
      agg.sys += a.sys - b.sys;
      byName.set(a.name, agg);
    }
    console.log(`${which} ${extra.join(' ')}: ${requests} requests, ${(requests / DURATION).toFixed(0)} req/s (wrk -t1 -c50 -d${DURATION}s)`);
    let total = 0;
    const rows = [...byName].map(([name, t]) => ({ name, user: (t.user * TICK_US) / requests, sys: (t.sys * TICK_US) / requests }));
    rows.sort((x, y) => y.user + y.sys - (x.user + x.sys));
    for (const r of rows) {
      total += r.user + r.sys;
      if (r.user + r.sys >= 0.3) console.log(`  ${r.name.padEnd(32)} user ${r.user.toFixed(1).padStart(6)}  sys ${r.sys.toFixed(1).padStart(6)}  µs/req`);
    }
    console.log(`  ${'all threads'.padEnd(32)} ${total.toFixed(1).padStart(25)}  µs/req`);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await m2.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`threads: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
