/**
 * `wsgid status` as text (pure: the report in, lines out). The first three lines are the same as
 * ever (scripts grep them); the rest is for people: the master, the mongrel2 endpoints, and one
 * line per worker as in `top`.
 */
import type { ProcessStatus, StatusReport, Usage } from './status-report.js';

function pidList(entries: { pid: number; alive: boolean }[]): string {
  return entries.length ? entries.map((e) => (e.alive ? String(e.pid) : `${e.pid}(dead)`)).join(', ') : '-';
}

/** 42 s, 3m05s, 2h07m, 3d04h. */
export function formatAge(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '-';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}

/** Bytes as 812 KB, 48.2 MB, 1.3 GB (powers of 1024, like top and ps). */
export function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined) return '-';
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
  return `${(bytes / 1024 ** 3).toFixed(1)} GB`;
}

function formatCpu(u: Usage): string {
  return u.cpu === undefined ? '-' : `${u.cpu.toFixed(1)}%`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => '  ' + r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd());
}

function workerRows(workers: ProcessStatus[]): string[][] {
  const rows: string[][] = [['PID', 'STATE', 'AGE', 'SERVED', 'IN FLIGHT', 'RSS', 'CPU']];
  for (const w of workers) {
    const state = !w.alive ? 'dead' : (w.state ?? '?') + (w.retiring ? ' (retiring)' : '');
    rows.push([String(w.pid), state, formatAge(w.uptime), String(w.served ?? '-'), String(w.inFlight ?? '-'), formatBytes(w.rss), formatCpu(w)]);
    for (const c of w.children ?? []) rows.push([` └ ${c.pid}`, 'child', '', '', '', formatBytes(c.rss), formatCpu(c)]);
  }
  return rows;
}

/** `worker 3 (pid 4133) code 1: Error: boom`: how the last unexpected death went and why. */
function deathReason(d: StatusReport['lastDeath']): string | undefined {
  if (!d?.exit) return undefined;
  const why = d.reason ?? d.lastStderr;
  const who = d.pid !== undefined && d.pid > 0 ? `worker ${d.worker ?? '?'} (pid ${d.pid})` : `worker ${d.worker ?? '?'} (never started)`;
  return `${who} exited with ${d.exit}${why ? `: ${why}` : ''}`;
}

export function formatStatus(report: StatusReport): string {
  const lines = [
    `Status: ${{ running: 'Running', 'crash-looping': 'Crash-looping', stopped: 'Stopped' }[report.status]}`,
    `Master pid(s): ${pidList(report.master)}`,
    `Worker pid(s): ${pidList(report.workers)}`,
  ];
  for (const problem of report.problems ?? []) lines.push(`Problem: ${problem}`);
  const c = report.crashLoop;
  const why = deathReason(report.lastDeath);
  if (report.status === 'crash-looping' && c) {
    lines.push(
      `Crash loop: ${c.deaths} worker(s) in a row died soon after becoming ready (last: ${c.lastExit}); ` +
        `${c.nextSpawnIn ? `next spawn in ${c.nextSpawnIn} s` : 'respawning'}`,
    );
    if (why) lines.push(`Last death: ${why}`);
  } else if (report.status !== 'stopped' && (report.bootFailures ?? 0) > 0 && why && report.lastDeath?.booting) {
    lines.push(`Boot failures: ${report.bootFailures} in a row; last: ${why}`);
  }
  const master = report.master.find((m) => m.alive && m.uptime !== undefined);
  if (report.status !== 'stopped' && master !== undefined) {
    const single = master.mode === 'single';
    const parts = [`up ${formatAge(report.uptime)}`];
    if (!single) parts.push(`workers ${report.workers.filter((w) => w.alive && w.state === 'serving').length} serving / ${report.workersWanted ?? '?'} wanted`);
    else parts.push('single process (--workers=0)');
    parts.push(`rss ${formatBytes(master.rss)}`, `cpu ${formatCpu(master)}`);
    lines.push(`Master ${master.pid}: ${parts.join(', ')}`);
    if (!single) {
      lines.push(
        `Restarts: ${report.restarts ?? 0}, recycled ${report.recycled ?? 0}` +
          `${report.memoryRecycled ? ` (${report.memoryRecycled} for memory)` : ''}, reloads ${report.reloads ?? 0}, boot failures ${report.bootFailures ?? 0}`,
      );
      const reload = report.reload;
      if (reload?.outcome !== undefined) {
        lines.push(`Last reload: ${reload.outcome}${reload.reason ? ` (${reload.reason})` : ''}${reload.needsRestart?.length ? `; needs a full restart: ${reload.needsRestart.join(', ')}` : ''}`);
      }
    }
    const r = report.requests;
    if (r !== undefined) {
      const parts = [`served ${r.served}`, `in flight ${r.inFlight}`];
      if (!single) parts.push(`queued ${r.queued ?? 0}`, `502: ${r.answered502 ?? 0}`, `503: ${r.answered503 ?? 0}`, `504: ${r.answered504 ?? 0}`);
      lines.push(`Requests: ${parts.join(', ')}`);
    }
    if (report.endpoints !== undefined && report.endpoints.length > 0) {
      lines.push('Endpoints (mongrel2):');
      const rows = report.endpoints.map((e) => {
        let state = e.state;
        if (e.state === 'connected' && e.subscribed === false) state = 'connected, not subscribed yet';
        else if (e.state !== 'connected' && e.state !== 'connecting') state += ` ${formatAge(e.for)}`;
        if (e.disconnects > 0) state += `, ${e.disconnects} disconnect(s)`;
        return [`--${e.role}[${e.server}]`, e.address, state + (e.problem ? `: ${e.problem}` : '')];
      });
      lines.push(...table(rows));
    }
    if (report.metrics !== undefined) lines.push(`Metrics: ${report.metrics}`);
    if (report.workers.length > 0) {
      lines.push('Workers:');
      lines.push(...table(workerRows(report.workers)));
    }
    if (report.updatedAt !== undefined) lines.push(`(numbers of ${report.updatedAt})`);
  }
  return lines.join('\n') + '\n';
}
