/**
 * The status publisher (src/master/publisher.ts) on real files and a real HTTP endpoint: what it
 * writes to pid/status.json, how it says a failed write, what /metrics answers, what close()
 * leaves; and the signal tables (src/master/signals.ts) against gunicorn's own arbiter.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger, LogLevel } from '../../src/log/logger.js';
import { renderMetrics } from '../../src/master/metrics.js';
import { StatusPublisher, type StatusSource } from '../../src/master/publisher.js';
import { MASTER_SIGNALS, STANDALONE_SIGNALS } from '../../src/master/signals.js';
import { buildStandaloneStatus, type MasterStatusFile } from '../../src/master/status.js';
import type { WorkerUsage } from '../../src/master/reports.js';
import { emptyCounts } from '../../src/metrics/request-metrics.js';
import { PYTHON } from '../helpers/python-app.js';

function recordingLogger(): Logger & { lines: Array<[LogLevel, string]> } {
  const lines: Array<[LogLevel, string]> = [];
  const at = (level: LogLevel) => (message: string) => void lines.push([level, message]);
  const logger = { level: 'debug' as const, lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), reopen() {}, child: () => logger };
  return logger;
}

function appFolder(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsgid-publisher-'));
  mkdirSync(path.join(dir, 'pid'));
  return dir;
}

/** A --workers=0 like source: what the single process would publish, `served` set by the test. */
function source(publisher: () => StatusPublisher, served: () => number): StatusSource {
  return {
    status: (): MasterStatusFile =>
      buildStandaloneStatus({
        pid: process.pid,
        startedAt: 0,
        now: 5000,
        state: 'running',
        served: served(),
        inFlight: 0,
        usage: publisher().usage,
        metricsUrl: publisher().metricsUrl,
      }),
    requests: () => {
      const counts = emptyCounts();
      counts.byClass[1] = counts.count = served(); // 2xx
      return new Map([['fetch', counts]]);
    },
  };
}

test('publisher: each tick writes the source\'s status to pid/status.json (0640, pretty JSON, this process sampled)', async () => {
  const dir = appFolder();
  let served = 1;
  const publisher: StatusPublisher = new StatusPublisher(dir, source(() => publisher, () => served), recordingLogger());
  try {
    publisher.tick();
    const file = path.join(dir, 'pid', 'status.json');
    const first = readFileSync(file, 'utf8');
    const status = JSON.parse(first) as MasterStatusFile;
    assert.equal(first, JSON.stringify(status, null, 2) + '\n');
    assert.equal(statSync(file).mode & 0o777, 0o640);
    assert.equal(status.requests.served, 1);
    assert.equal(status.master.mode, 'single');
    assert.ok((status.master.rss ?? 0) > 0, 'the master rss from /proc');
    assert.equal(status.problems, undefined);
    served = 7;
    publisher.tick();
    assert.equal((JSON.parse(readFileSync(file, 'utf8')) as MasterStatusFile).requests.served, 7);
    await publisher.close();
    assert.equal(existsSync(file), false, 'close() removes status.json');
    assert.equal(publisher.closing, true);
  } finally {
    await publisher.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('publisher: a failed write is logged once per run of failures, then once when it is written again', async () => {
  const dir = appFolder();
  const log = recordingLogger();
  const publisher: StatusPublisher = new StatusPublisher(dir, source(() => publisher, () => 0), log);
  try {
    rmSync(path.join(dir, 'pid'), { recursive: true });
    publisher.tick();
    publisher.tick();
    publisher.tick();
    const errors = log.lines.filter(([level]) => level === 'error');
    assert.equal(errors.length, 1, JSON.stringify(log.lines));
    assert.match(errors[0]![1], /^cannot write pid\/status\.json: `wsgid status` and `wsgid restart` see old numbers until it can$/);
    mkdirSync(path.join(dir, 'pid'));
    publisher.tick();
    publisher.tick();
    assert.deepEqual(
      log.lines.filter(([level]) => level === 'info'),
      [['info', 'pid/status.json is written again']],
    );
    assert.ok(existsSync(path.join(dir, 'pid', 'status.json')));
  } finally {
    await publisher.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('publisher: out of file descriptors is logged and shown in the status\'s problems', async () => {
  const dir = appFolder();
  const log = recordingLogger();
  const publisher: StatusPublisher = new StatusPublisher(dir, source(() => publisher, () => 0), log);
  try {
    publisher.noteOutOfFds('', 'cannot spawn a worker: out of file descriptors (EMFILE)');
    publisher.noteOutOfFds('', 'cannot spawn a worker: out of file descriptors (EMFILE)');
    assert.equal(log.lines.filter(([level]) => level === 'error').length, 1, 'not logged again within 10 s');
    publisher.tick();
    const status = JSON.parse(readFileSync(path.join(dir, 'pid', 'status.json'), 'utf8')) as MasterStatusFile;
    assert.deepEqual(status.problems, ['cannot spawn a worker: out of file descriptors (EMFILE)']);
  } finally {
    await publisher.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('publisher: workers and their children are sampled and handed to the source as they are taken', async () => {
  const dir = appFolder();
  const sampled: Array<[number, WorkerUsage]> = [];
  // This process stands for a worker (its /proc is there); pid 0 (not forked yet) is skipped.
  const publisher = new StatusPublisher(
    dir,
    {
      status: () => buildStandaloneStatus({ pid: process.pid, startedAt: 0, now: 0, state: 'running', served: 0, inFlight: 0 }),
      requests: () => new Map(),
      workers: () => [
        { id: 1, pid: process.pid },
        { id: 2, pid: 0 },
      ],
      sampled: (id, usage) => void sampled.push([id, usage]),
    },
    recordingLogger(),
  );
  try {
    publisher.sample();
    assert.deepEqual(
      sampled.map(([id]) => id),
      [1],
    );
    assert.equal(sampled[0]![1].self?.pid, process.pid);
    assert.ok((sampled[0]![1].self?.rss ?? 0) > 0);
    assert.equal(publisher.usage?.pid, process.pid);
  } finally {
    await publisher.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('publisher: /metrics answers the source\'s numbers; the status names the endpoint; close() stops it', async () => {
  const dir = appFolder();
  const log = recordingLogger();
  const numbers = source(() => publisher, () => 3);
  const publisher: StatusPublisher = new StatusPublisher(dir, numbers, log);
  try {
    await publisher.serveMetrics({ host: '127.0.0.1', port: 0 });
    const url = publisher.metricsUrl;
    assert.match(url ?? '', /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    assert.ok(log.lines.some(([level, message]) => level === 'info' && message === 'metrics served'));
    publisher.sample();
    const response = await fetch(url!);
    assert.equal(response.status, 200);
    const body = await response.text();
    // The source's clock is fixed and the sample kept: the same status each time it is built.
    const status = numbers.status();
    assert.equal(status.metrics, url);
    assert.equal(response.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(body, renderMetrics(status, numbers.requests()));
    assert.match(body, /^wsgid_requests_total\{[^}]*gateway="fetch"[^}]*\} 3$/m);
    await publisher.close();
    await assert.rejects(fetch(url!));
  } finally {
    await publisher.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('signals: the master handles gunicorn\'s arbiter signals but USR2 and WINCH, each for what gunicorn does', () => {
  // The oracle: gunicorn's own Arbiter.SIGNALS (Debian's python3-gunicorn).
  const out = execFileSync(PYTHON, ['-c', 'import signal, gunicorn.arbiter as a; print(" ".join(signal.Signals(s).name for s in a.Arbiter.SIGNALS))'], { encoding: 'utf8' });
  const gunicorn = out.trim().split(' ');
  // USR2 (re-exec the binary) and WINCH (stop all workers, daemon only) have no wsgid counterpart.
  assert.deepEqual(Object.keys(MASTER_SIGNALS).sort(), gunicorn.filter((s) => s !== 'SIGUSR2' && s !== 'SIGWINCH').sort());
  assert.deepEqual(MASTER_SIGNALS, {
    SIGTERM: 'stop',
    SIGINT: 'stop',
    SIGQUIT: 'stop',
    SIGHUP: 'reload',
    SIGTTIN: 'resize',
    SIGTTOU: 'resize',
    SIGUSR1: 'reopen',
  });
});

test('signals: --workers=0 takes the master\'s stop and reopen signals, and no reload or resize', () => {
  const kept = Object.entries(MASTER_SIGNALS).filter(([, action]) => action === 'stop' || action === 'reopen');
  assert.deepEqual(Object.entries(STANDALONE_SIGNALS), kept);
});
