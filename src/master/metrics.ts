/**
 * The Prometheus metrics (docs/METRICS.md), built from the status snapshot (the same numbers as
 * `wsgid status`) and the request totals the workers reported. Pure: the text comes from
 * metrics/exposition.ts; the HTTP side is metrics/server.ts. Used by the master and, with
 * --workers=0, by the single process (cli/start.ts).
 */
import { DURATION_BUCKETS, STATUS_CLASSES, type RequestCounts } from '../metrics/request-metrics.js';
import { render, type Family, type Sample } from '../metrics/exposition.js';
import type { MasterStatusFile } from './status.js';

/** Worker states that always appear in `wsgid_workers` (0 when none); others appear when present. */
const KNOWN_STATES = ['booting', 'serving', 'draining', 'aborted'];

/** The text of GET /metrics. `requests`: totals per gateway kind. */
export function renderMetrics(status: MasterStatusFile, requests: ReadonlyMap<string, RequestCounts>): string {
  return render(metricFamilies(status, requests));
}

export function metricFamilies(status: MasterStatusFile, requests: ReadonlyMap<string, RequestCounts>): Family[] {
  const r = status.requests;
  const gateways = [...requests.keys()].sort();
  const byClass: Sample[] = [];
  for (const gateway of gateways) {
    const counts = requests.get(gateway)!;
    STATUS_CLASSES.forEach((cls, i) => byClass.push({ labels: { gateway, code: cls }, value: counts.byClass[i] ?? 0 }));
  }
  // The master's own answers are requests too: a client saw them.
  byClass.push({ labels: { gateway: 'master', code: '5xx' }, value: r.answered502 + r.answered503 + r.answered504 });

  const states = new Map<string, number>(KNOWN_STATES.map((s) => [s, 0]));
  for (const w of status.workers) states.set(w.state, (states.get(w.state) ?? 0) + 1);

  const rss: Sample[] = [];
  const cpu: Sample[] = [];
  const addUsage = (labels: Record<string, string>, u: { rss?: number; cpuSeconds?: number }): void => {
    if (u.rss !== undefined) rss.push({ labels, value: u.rss });
    if (u.cpuSeconds !== undefined) cpu.push({ labels, value: u.cpuSeconds });
  };
  addUsage({ role: 'master', worker: '', pid: String(status.master.pid) }, status.master);
  for (const w of status.workers) {
    addUsage({ role: 'worker', worker: String(w.id), pid: String(w.pid) }, w);
    for (const c of w.children ?? []) addUsage({ role: 'child', worker: String(w.id), pid: String(c.pid) }, c);
  }

  const endpoints = status.endpoints ?? [];
  const endpointLabels = (e: (typeof endpoints)[number]): Record<string, string> => ({
    role: e.role,
    server: String(e.server),
    endpoint: e.address,
  });

  const families: Family[] = [
    {
      name: 'wsgid_info',
      help: 'wsgid version and mode (always 1).',
      type: 'gauge',
      samples: [{ labels: { version: status.wsgid, mode: status.master.mode ?? 'workers' }, value: 1 }],
    },
    {
      name: 'wsgid_start_time_seconds',
      help: 'When the master started, in seconds since the Unix epoch.',
      type: 'gauge',
      samples: [{ value: Date.parse(status.master.startedAt) / 1000 }],
    },
    {
      name: 'wsgid_requests_total',
      help: 'Requests answered, by gateway and status class (gateway="master": the master\'s own 502/503/504).',
      type: 'counter',
      samples: byClass,
    },
    {
      name: 'wsgid_request_duration_seconds',
      help: 'Time from a request reaching the process that serves it to its response being handed to ZeroMQ.',
      type: 'histogram',
      samples: gateways.map((gateway) => {
        const c = requests.get(gateway)!;
        return { labels: { gateway }, bounds: DURATION_BUCKETS, counts: c.buckets, sum: c.sum };
      }),
    },
    { name: 'wsgid_requests_in_flight', help: 'Requests received and not yet answered.', type: 'gauge', samples: [{ value: r.inFlight }] },
    { name: 'wsgid_requests_queued', help: 'Messages waiting in the master for a worker with credit.', type: 'gauge', samples: [{ value: r.queued }] },
    {
      name: 'wsgid_master_answers_total',
      help: 'Answers the master wrote itself: 502 (worker died), 503 (queue full), 504 (timeout).',
      type: 'counter',
      samples: [
        { labels: { code: '502' }, value: r.answered502 },
        { labels: { code: '503' }, value: r.answered503 },
        { labels: { code: '504' }, value: r.answered504 },
      ],
    },
    {
      name: 'wsgid_messages_received_total',
      help: 'Messages received from mongrel2 by the master (requests, disconnects, upload and WebSocket messages).',
      type: 'counter',
      samples: [{ value: r.received }],
    },
    {
      name: 'wsgid_messages_malformed_total',
      help: 'Messages from mongrel2 dropped as malformed.',
      type: 'counter',
      samples: [{ value: r.malformed }],
    },
    {
      name: 'wsgid_workers',
      help: 'Worker processes by state.',
      type: 'gauge',
      samples: [...states].map(([state, value]) => ({ labels: { state }, value })),
    },
    { name: 'wsgid_workers_wanted', help: 'Workers the master keeps running.', type: 'gauge', samples: [{ value: status.workersWanted }] },
    { name: 'wsgid_worker_restarts_total', help: 'Workers respawned after an unexpected death.', type: 'counter', samples: [{ value: status.restarts }] },
    { name: 'wsgid_worker_recycles_total', help: 'Workers replaced after --max-requests.', type: 'counter', samples: [{ value: status.recycled }] },
    { name: 'wsgid_reloads_total', help: 'Rolling reloads (HUP).', type: 'counter', samples: [{ value: status.reloads }] },
    { name: 'wsgid_worker_boot_failures_total', help: 'Workers that exited before they were ready.', type: 'counter', samples: [{ value: status.bootFailures }] },
    {
      name: 'wsgid_process_resident_memory_bytes',
      help: 'Resident memory of the master, each worker and its children (role="child": e.g. a WSGI worker\'s Python).',
      type: 'gauge',
      samples: rss,
    },
    {
      name: 'wsgid_process_cpu_seconds_total',
      help: 'CPU time (user + system) of the master, each worker and its children.',
      type: 'counter',
      samples: cpu,
    },
    {
      name: 'wsgid_endpoint_connected',
      help: 'Whether the mongrel2 endpoint is connected (handshake done; for send, subscribed too).',
      type: 'gauge',
      samples: endpoints.map((e) => ({ labels: endpointLabels(e), value: e.state === 'connected' && e.subscribed !== false ? 1 : 0 })),
    },
    {
      name: 'wsgid_endpoint_disconnects_total',
      help: 'Connections to the mongrel2 endpoint lost after a handshake.',
      type: 'counter',
      samples: endpoints.map((e) => ({ labels: endpointLabels(e), value: e.disconnects })),
    },
  ];
  return families;
}
