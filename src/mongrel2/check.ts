/**
 * `wsgid check --mongrel2-db=PATH`: does mongrel2's loaded configuration (its config.sqlite, read
 * by db.ts) fit this wsgid? Pure: the rows and wsgid's settings in, findings with their fix out.
 *
 * What it looks for, each a mistake that otherwise shows up only as clients that wait or fail:
 * a handler whose send_spec/recv_spec are not wsgid's --recv/--send (or are crossed), a send_ident
 * mongrel2 cannot use in replies, a recv_ident that filters wsgid's replies out, no route to the
 * handler, `limits.content_length` below 4096, uploads that wsgid cannot find (no
 * `upload.temp_store`, no --mongrel2-chroot, another chroot), and download credits off.
 */
import path from 'node:path';
import { MIN_CONTENT_LENGTH } from './config.js';

export interface DbHandler {
  readonly id: number;
  readonly send_spec: string;
  readonly send_ident: string;
  readonly recv_spec: string;
  readonly recv_ident: string;
  readonly protocol: string;
}
export interface DbRoute {
  readonly path: string;
  readonly host_id: number;
  readonly target_id: number;
  readonly target_type: string;
}
export interface DbHost {
  readonly id: number;
  readonly server_id: number;
  readonly name: string;
}
export interface DbServer {
  readonly id: number;
  readonly uuid: string;
  readonly name: string;
  readonly chroot: string;
}
/** What db.ts reads from config.sqlite. */
export interface Mongrel2Db {
  readonly handlers: readonly DbHandler[];
  readonly routes: readonly DbRoute[];
  readonly hosts: readonly DbHost[];
  readonly servers: readonly DbServer[];
  readonly settings: ReadonlyArray<{ readonly key: string; readonly value: string }>;
}

export interface WsgidSide {
  readonly appPath: string;
  readonly recv: readonly string[];
  readonly send: readonly string[];
  readonly mongrel2Chroot: string;
}

export interface Finding {
  readonly level: 'error' | 'warning' | 'ok';
  readonly message: string;
  readonly fix?: string;
}

/** mongrel2's defaults for the settings checked (src/setting.c, the manual). */
const DEFAULT_CONTENT_LENGTH = 20480;

interface Tcp {
  host: string;
  port: number;
}
function tcpOf(endpoint: string): Tcp | undefined {
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:]+):(\d+)$/.exec(endpoint);
  return m ? { host: m[1]!, port: Number(m[2]) } : undefined;
}
const isAddress = (host: string): boolean => /^\d+\.\d+\.\d+\.\d+$/.test(host) || host.startsWith('[');

/**
 * Does mongrel2 binding `bound` (inside `chroot`) serve wsgid connecting to `connect`? A host name
 * wsgid connects to cannot be resolved here: the port decides.
 */
export function endpointsMatch(bound: string, connect: string, chroot: string): boolean {
  if (bound.startsWith('ipc://') && connect.startsWith('ipc://')) {
    const b = bound.slice('ipc://'.length);
    const c = path.normalize(connect.slice('ipc://'.length));
    // mongrel2 binds after its chroot: relative and absolute paths both lie inside it (or, when it
    // runs without root in "test mode", an absolute path is itself).
    return path.normalize(path.join(chroot, b)) === c || (path.isAbsolute(b) && path.normalize(b) === c);
  }
  const tb = tcpOf(bound);
  const tc = tcpOf(connect);
  if (!tb || !tc || tb.port !== tc.port) return false;
  if (tb.host === tc.host || tb.host === '*' || tb.host === '0.0.0.0') return true;
  if (tc.host === 'localhost') return tb.host === '127.0.0.1' || tb.host === 'localhost';
  return !isAddress(tc.host);
}

/** The endpoint wsgid connects to for one mongrel2 binds (for the fix it suggests). */
export function connectSpecOf(bound: string, chroot: string): string {
  if (bound.startsWith('ipc://')) {
    const p = bound.slice('ipc://'.length);
    return `ipc://${path.join(chroot, p)}`;
  }
  const t = tcpOf(bound);
  if (t && (t.host === '*' || t.host === '0.0.0.0')) return `tcp://127.0.0.1:${t.port}`;
  return bound;
}

function serverOfHandler(db: Mongrel2Db, handler: DbHandler): { server?: DbServer; routes: string[] } {
  const routes = db.routes.filter((r) => r.target_type === 'handler' && r.target_id === handler.id);
  const host = db.hosts.find((h) => routes.some((r) => r.host_id === h.id));
  return { server: host && db.servers.find((s) => s.id === host.server_id), routes: routes.map((r) => r.path) };
}

const describe = (h: DbHandler): string => `Handler(send_spec='${h.send_spec}', recv_spec='${h.recv_spec}')`;

/** Check the handler(s) and settings of a mongrel2 config.sqlite against wsgid's settings. */
export function checkMongrel2Db(db: Mongrel2Db, wsgid: WsgidSide): Finding[] {
  const findings: Finding[] = [];
  const chrootOf = (h: DbHandler): string => serverOfHandler(db, h).server?.chroot ?? db.servers[0]?.chroot ?? '/';
  const served: DbHandler[] = [];

  if (db.servers.length === 0) findings.push({ level: 'error', message: 'the database has no server', fix: 'm2sh load -config mongrel2.conf -db config.sqlite (wsgid mongrel2-config prints one)' });
  if (wsgid.recv.length === 0) {
    const h = db.handlers[0];
    findings.push({
      level: 'error',
      message: `wsgid has no --recv/--send (command line or ${path.join(wsgid.appPath, 'wsgid.json')})`,
      fix: h
        ? `wsgid config --app-path=${wsgid.appPath} --recv=${connectSpecOf(h.send_spec, chrootOf(h))} --send=${connectSpecOf(h.recv_spec, chrootOf(h))}`
        : `wsgid config --app-path=${wsgid.appPath} --recv=ENDPOINT --send=ENDPOINT`,
    });
  }
  wsgid.recv.forEach((recv, i) => {
    const send = wsgid.send[i] ?? '';
    const pair = `--recv=${recv} --send=${send}`;
    const handler = db.handlers.find((h) => endpointsMatch(h.send_spec, recv, chrootOf(h)));
    if (!handler) {
      const crossed = db.handlers.find((h) => endpointsMatch(h.send_spec, send, chrootOf(h)) && endpointsMatch(h.recv_spec, recv, chrootOf(h)));
      if (crossed) {
        findings.push({
          level: 'error',
          message: `${pair} are crossed: ${describe(crossed)} sends requests where wsgid publishes replies`,
          fix: `wsgid config --app-path=${wsgid.appPath} --recv=${connectSpecOf(crossed.send_spec, chrootOf(crossed))} --send=${connectSpecOf(crossed.recv_spec, chrootOf(crossed))} (--recv is the handler's send_spec)`,
        });
        served.push(crossed);
        return;
      }
      findings.push({
        level: 'error',
        message: `no handler sends requests to --recv=${recv}; the handlers are: ${db.handlers.map(describe).join(', ') || 'none'}`,
        fix: `a Handler(send_spec='${recv}', recv_spec='${send}', ...) in mongrel2.conf (wsgid mongrel2-config prints one), or wsgid's --recv/--send set to a handler's send_spec/recv_spec`,
      });
      return;
    }
    served.push(handler);
    if (!endpointsMatch(handler.recv_spec, send, chrootOf(handler))) {
      findings.push({
        level: 'error',
        message: `${describe(handler)} takes requests from wsgid's --recv, but listens for replies on ${handler.recv_spec}, not wsgid's --send=${send}: clients would wait forever`,
        fix: `wsgid config --app-path=${wsgid.appPath} --send=${connectSpecOf(handler.recv_spec, chrootOf(handler))} (or recv_spec='${send}' in mongrel2.conf)`,
      });
    } else {
      findings.push({ level: 'ok', message: `${describe(handler)} matches ${pair}` });
    }
  });

  for (const handler of served) {
    const { routes } = serverOfHandler(db, handler);
    if (routes.length === 0) {
      findings.push({ level: 'error', message: `no route leads to ${describe(handler)}`, fix: "a route to it in the Host's routes, e.g. routes={'/': handler}" });
    }
    if (!/^[A-Za-z0-9-]+$/.test(handler.send_ident)) {
      findings.push({
        level: 'error',
        message: `send_ident '${handler.send_ident}' has characters other than [A-Za-z0-9-]: mongrel2 drops the replies that carry it`,
        fix: `send_ident='${handler.send_ident.replace(/[^A-Za-z0-9-]+/g, '-').replace(/^-+|-+$/g, '') || 'app'}'`,
      });
    }
    if (handler.recv_ident !== '' && !handler.send_ident.startsWith(handler.recv_ident)) {
      findings.push({
        level: 'error',
        message: `recv_ident '${handler.recv_ident}' is not a prefix of send_ident '${handler.send_ident}': mongrel2 filters out wsgid's replies (they start with the send_ident)`,
        fix: "recv_ident=''",
      });
    }
    if (handler.protocol !== 'tnetstring') {
      findings.push({ level: 'warning', message: `protocol '${handler.protocol}': mongrel2's JSON headers are not always valid JSON (wsgid reads them anyway)`, fix: "protocol='tnetstring'" });
    }
  }

  const setting = (key: string): string | undefined => db.settings.find((s) => s.key === key)?.value;
  const contentLength = Number(setting('limits.content_length') ?? DEFAULT_CONTENT_LENGTH);
  if (contentLength < MIN_CONTENT_LENGTH) {
    findings.push({
      level: 'error',
      message: `limits.content_length is ${contentLength}: below ${MIN_CONTENT_LENGTH} mongrel2 corrupts uploads`,
      fix: `"limits.content_length": 1048576 (at least ${MIN_CONTENT_LENGTH}) in settings`,
    });
  }
  const tempStore = setting('upload.temp_store');
  const chroots = [...new Set(served.length > 0 ? served.map(chrootOf) : db.servers.map((s) => s.chroot))];
  if (tempStore === undefined) {
    findings.push({
      level: 'warning',
      message: `no upload.temp_store: bodies over ${contentLength} bytes and every chunked body are refused (413)`,
      fix: '"upload.temp_store": "/tmp/upload.XXXXXX" in settings (and <chroot>/tmp), wsgid --mongrel2-chroot=<chroot>',
    });
  } else if (!/X{6}$/.test(tempStore)) {
    findings.push({ level: 'error', message: `upload.temp_store '${tempStore}' does not end in XXXXXX (an mkstemp template)`, fix: '"upload.temp_store": "/tmp/upload.XXXXXX"' });
  } else if (wsgid.mongrel2Chroot === '') {
    findings.push({
      level: 'error',
      message: `uploads (bodies over ${contentLength} bytes, chunked bodies) are written under mongrel2's chroot, but wsgid has no --mongrel2-chroot to find them`,
      fix: `wsgid config --app-path=${wsgid.appPath} --mongrel2-chroot=${chroots[0] ?? '<chroot>'}`,
    });
  } else if (chroots.length > 0 && !chroots.some((c) => path.resolve(c) === path.resolve(wsgid.mongrel2Chroot))) {
    findings.push({
      level: 'error',
      message: `wsgid's --mongrel2-chroot=${wsgid.mongrel2Chroot} is not mongrel2's chroot ${chroots.join(', ')}: upload files would not be found`,
      fix: `wsgid config --app-path=${wsgid.appPath} --mongrel2-chroot=${chroots[0]}`,
    });
  }
  if (setting('download.flow_control') !== '1') {
    findings.push({
      level: 'warning',
      message: 'download.flow_control is off: a large response to a slow client waits in memory (mongrel2 and the worker)',
      fix: '"download.flow_control": 1 in settings (or wsgid --uncredited-limit=SIZE)',
    });
  }
  return findings;
}
