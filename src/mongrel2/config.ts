/**
 * The mongrel2.conf that serves one app folder through wsgid (`wsgid mongrel2-config`, and the
 * private mongrel2 of `wsgid dev`): text only, the command gathers the inputs.
 *
 * What it encodes, so nobody has to learn it first (docs/MONGREL2.md, "The handler protocol"):
 * - wsgid's `--recv` is the handler's `send_spec`, its `--send` the handler's `recv_spec`; mongrel2
 *   binds both, wsgid connects;
 * - `protocol='tnetstring'` (mongrel2's JSON headers are not always valid JSON);
 * - send idents only of [A-Za-z0-9-], recv_ident '' (every reply of this handler is accepted);
 * - `limits.content_length` of at least 4096: bodies above it go the async upload path, which
 *   needs `upload.temp_store` (an mkstemp template inside the chroot) and wsgid's --mongrel2-chroot;
 * - `download.flow_control=1`: large downloads are paced by mongrel2's credits instead of waiting
 *   in memory (docs/MONGREL2.md).
 */
import { createHash } from 'node:crypto';

export interface Mongrel2Handler {
  /** Route key, e.g. '/'. */
  readonly route: string;
  /** Where mongrel2 PUSHes requests (wsgid's --recv, as mongrel2 binds it). */
  readonly sendSpec: string;
  readonly sendIdent: string;
  /** Where mongrel2 SUBscribes to replies (wsgid's --send, as mongrel2 binds it). */
  readonly recvSpec: string;
  readonly recvIdent: string;
  readonly protocol: 'tnetstring' | 'json';
}

/** A static folder mongrel2 serves itself: `base` relative to its chroot, ending in '/'. */
export interface Mongrel2Dir {
  readonly route: string;
  readonly base: string;
}

export interface Mongrel2ConfigInputs {
  readonly uuid: string;
  readonly name: string;
  readonly chroot: string;
  readonly bindAddr: string;
  readonly port: number;
  readonly host: string;
  /** Paths as mongrel2 wants them (relative to the chroot when it chroots). */
  readonly accessLog: string;
  readonly errorLog: string;
  readonly pidFile: string;
  readonly handlers: readonly Mongrel2Handler[];
  readonly dirs: readonly Mongrel2Dir[];
  readonly settings: Readonly<Record<string, string | number>>;
  /** Comment lines for the top of the file (without '#'). */
  readonly header?: readonly string[];
  /** Comment lines after the routes (e.g. a static folder that could not be routed). */
  readonly notes?: readonly string[];
}

/** The smallest `limits.content_length` that keeps uploads intact (below it mongrel2 corrupts them). */
export const MIN_CONTENT_LENGTH = 4096;

/** Settings every generated config carries, with why (written as comments). */
export const RECOMMENDED_SETTINGS: ReadonlyArray<readonly [string, string | number, string]> = [
  ['limits.content_length', 1_048_576, `bodies above this go the async upload path (keep it >= ${MIN_CONTENT_LENGTH})`],
  ['upload.temp_store', '/tmp/upload.XXXXXX', "async upload files, inside the chroot: create <chroot>/tmp; wsgid reads them with --mongrel2-chroot"],
  ['download.flow_control', 1, 'large responses are paced by download credits instead of waiting in memory'],
  ['server.daemonize', 0, 'stay in the foreground, for a supervisor (systemd, runit); 1 lets m2sh start detach'],
];

/** A Python string literal m2sh reads (JSON's double-quoted form is one for the characters used). */
function py(value: string): string {
  return JSON.stringify(value);
}

function pyValue(value: string | number): string {
  return typeof value === 'number' ? String(value) : py(value);
}

function comment(lines: readonly string[] | undefined): string[] {
  return (lines ?? []).map((line) => `# ${line}`.replace(/[\r\n]/g, ' ').trimEnd());
}

/** The mongrel2.conf text (m2sh load -config FILE -db config.sqlite). */
export function renderMongrel2Config(inputs: Mongrel2ConfigInputs): string {
  const out: string[] = [...comment(inputs.header)];
  if (out.length > 0) out.push('');
  inputs.handlers.forEach((h, i) => {
    out.push(
      `handler_${i} = Handler(send_spec=${py(h.sendSpec)}, send_ident=${py(h.sendIdent)},`,
      `    recv_spec=${py(h.recvSpec)}, recv_ident=${py(h.recvIdent)}, protocol=${py(h.protocol)})`,
    );
  });
  inputs.dirs.forEach((d, i) => {
    out.push(`static_${i} = Dir(base=${py(d.base)}, index_file="index.html", default_ctype="application/octet-stream")`);
  });
  const routes = [
    ...inputs.dirs.map((d, i) => `${py(d.route)}: static_${i}`),
    ...inputs.handlers.map((h, i) => `${py(h.route)}: handler_${i}`),
  ];
  out.push(
    '',
    `main = Server(uuid=${py(inputs.uuid)}, name=${py(inputs.name)}, chroot=${py(inputs.chroot)},`,
    `    access_log=${py(inputs.accessLog)}, error_log=${py(inputs.errorLog)}, pid_file=${py(inputs.pidFile)},`,
    `    default_host=${py(inputs.host)}, bind_addr=${py(inputs.bindAddr)}, port=${inputs.port},`,
    `    hosts=[Host(name=${py(inputs.host)}, routes={`,
    routes.map((r) => `        ${r}`).join(',\n'),
    '    })])',
  );
  const notes = comment(inputs.notes);
  if (notes.length > 0) out.push(...notes);
  out.push('', 'settings = {');
  const why = new Map(RECOMMENDED_SETTINGS.map(([key, , reason]) => [key, reason]));
  // m2sh takes no trailing comma; its lexer skips comments anywhere.
  const entries = Object.entries(inputs.settings);
  entries.forEach(([key, value], i) => {
    const reason = why.get(key);
    if (reason) out.push(`    # ${reason}`);
    out.push(`    ${py(key)}: ${pyValue(value)}${i < entries.length - 1 ? ',' : ''}`);
  });
  out.push('}', '', 'servers = [main]', '');
  return out.join('\n');
}

/**
 * The endpoint mongrel2 binds for an endpoint wsgid connects to. ZeroMQ binds an address, not a
 * name: `localhost` becomes 127.0.0.1, another host name every interface (`*`, with a note).
 * mongrel2 binds after its chroot: an ipc:// path inside `chroot` is given relative to it (which
 * also holds when mongrel2, not root, runs in the chroot folder without chrooting).
 */
export function bindSpecOf(endpoint: string, chroot: string): { spec: string; note?: string } {
  if (endpoint.startsWith('ipc://')) {
    const file = endpoint.slice('ipc://'.length);
    const base = chroot.replace(/\/+$/, '');
    if (file.startsWith('/') && base !== '' && file.startsWith(base + '/')) return { spec: `ipc://${file.slice(base.length + 1)}` };
    return {
      spec: endpoint,
      note: `${endpoint} is not inside mongrel2's chroot ${chroot}: mongrel2 binds it after chrooting, so wsgid will not find it; use an ipc:// path under ${chroot}`,
    };
  }
  const tcp = /^tcp:\/\/(\[[^\]]+\]|[^:]+):(\d+)$/.exec(endpoint);
  if (!tcp) return { spec: endpoint };
  const host = tcp[1]!;
  if (host === 'localhost') return { spec: `tcp://127.0.0.1:${tcp[2]}` };
  if (host === '*' || /^\d+\.\d+\.\d+\.\d+$/.test(host) || host.startsWith('[')) return { spec: endpoint };
  return {
    spec: `tcp://*:${tcp[2]}`,
    note: `wsgid connects to ${endpoint}; mongrel2 binds every interface for it (a ZeroMQ bind takes an address, not a host name): put this host's address there to narrow it`,
  };
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** A server uuid that stays the same for one app folder (so a re-generated config keeps it). */
export function stableUuid(seed: string): string {
  const h = digest(`wsgid mongrel2 server ${seed}`);
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A send_ident ([A-Za-z0-9-] only) naming the app folder, the same for one folder and pair. */
export function stableSendIdent(name: string, seed: string): string {
  const readable = name.replace(/[^A-Za-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'app';
  return `wsgid-${readable}-${digest(`wsgid send ident ${seed}`).slice(0, 8)}`;
}

export interface AppServerInputs {
  /** The app folder (absolute); names the server, seeds its uuid and idents. */
  readonly root: string;
  /** wsgid's --recv and --send (paired by position). */
  readonly recv: readonly string[];
  readonly send: readonly string[];
  readonly chroot: string;
  readonly port: number;
  readonly host: string;
  readonly bindAddr: string;
  /** Static folders under app/ that mongrel2 can reach: route → base relative to the chroot. */
  readonly dirs: readonly Mongrel2Dir[];
  /** Log, pid and upload paths as mongrel2 must be given them (default: inside the chroot). */
  readonly paths?: { accessLog: string; errorLog: string; pidFile: string; uploadTemplate: string };
  readonly extraSettings?: Readonly<Record<string, string | number>>;
  readonly header?: readonly string[];
  readonly notes?: readonly string[];
}

/**
 * The config inputs for one app folder: one handler per --recv/--send pair at '/' (only the
 * first pair when there are several: each belongs to another mongrel2 server; see the notes).
 */
export function appServerConfig(app: AppServerInputs): Mongrel2ConfigInputs {
  const name = app.root.split('/').filter(Boolean).pop() ?? 'app';
  const notes: string[] = [...(app.notes ?? [])];
  const recv = app.recv[0]!;
  const send = app.send[0]!;
  const sendSpec = bindSpecOf(recv, app.chroot);
  const recvSpec = bindSpecOf(send, app.chroot);
  for (const n of [sendSpec.note, recvSpec.note]) if (n) notes.push(n);
  const paths = app.paths ?? { accessLog: '/logs/access.log', errorLog: '/logs/error.log', pidFile: '/run/mongrel2.pid', uploadTemplate: '/tmp/upload.XXXXXX' };
  const settings: Record<string, string | number> = {};
  for (const [key, value] of RECOMMENDED_SETTINGS) settings[key] = key === 'upload.temp_store' ? paths.uploadTemplate : value;
  Object.assign(settings, app.extraSettings ?? {});
  return {
    uuid: stableUuid(app.root),
    name: 'main',
    chroot: app.chroot,
    bindAddr: app.bindAddr,
    port: app.port,
    host: app.host,
    accessLog: paths.accessLog,
    errorLog: paths.errorLog,
    pidFile: paths.pidFile,
    handlers: [
      {
        route: '/',
        sendSpec: sendSpec.spec,
        sendIdent: stableSendIdent(name, `${app.root}\n${recv}\n${send}`),
        recvSpec: recvSpec.spec,
        recvIdent: '',
        protocol: 'tnetstring',
      },
    ],
    dirs: app.dirs,
    settings,
    header: app.header,
    notes,
  };
}
