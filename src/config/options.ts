/**
 * Every wsgid option, declared once (as gunicorn's config.py: name, section, flag, parser, default,
 * help). From this table come:
 * - the util.parseArgs configuration of each command (config/args.ts),
 * - the validation of wsgid.json (config/file.ts),
 * - the environment variables of the few options that have one (config/resolve.ts),
 * - `--help` and the Markdown CLI reference, grouped by section (cli/help.ts, `npm run docs`),
 * - the `Settings` type and the command-only `CommandValues` (config/settings.ts), inferred from
 *   each entry's kind or `parse`.
 *
 * Each value is parsed once, where it is read (command line, environment, wsgid.json): settings
 * hold bytes, {host, port} and enum strings, plain JSON that travels to the workers as it is.
 *
 * Naming follows the original wsgid: the wsgid.json key is the flag without `--`, with `-` → `_`
 * (`--app-path` ↔ `app_path`); the one exception is `--env KEY=VALUE` ↔ `envs` (a map).
 */
import { constants as osConstants } from 'node:os';
import { formatHostPort, parseHostPort, type HostPort } from './address.js';

/** The value kinds an option may have (how it is typed on the command line and in wsgid.json). */
export type OptionType = 'string' | 'int' | 'bool' | 'list' | 'map';

/** The TypeScript type of a raw value, by kind (before the option's own `parse`). */
export type ValueOf<T extends OptionType> = T extends 'string'
  ? string
  : T extends 'int'
    ? number
    : T extends 'bool'
      ? boolean
      : T extends 'list'
        ? string[]
        : Record<string, string>;

/** What a parser returns for a value it refuses: the text after "--flag: " ("expected …, got …"). */
export class Invalid {
  constructor(readonly problem: string) {}
}

/** Built-in commands. Plugins may add more (cli/commands.ts); those accept the `start` options. */
export const COMMANDS = [
  'start',
  'init',
  'config',
  'stop',
  'restart',
  'reload',
  'status',
  'systemd-unit',
  'reopen-logs',
  'mongrel2-config',
  'dev',
  'check',
] as const;
export type CommandName = (typeof COMMANDS)[number];
/** Built-in commands that take positional arguments (`wsgid dev [APP_DIR]`). */
export const POSITIONAL_COMMANDS: readonly CommandName[] = ['dev'];

/** The sections of `--help` and docs/CLI.md, in their order (gunicorn's `section`). */
export const SECTIONS = {
  folder: 'App folder',
  mongrel2: 'mongrel2',
  app: 'The app',
  workers: 'Workers',
  timeouts: 'Timeouts and limits',
  recycling: 'Recycling and crash loops',
  process: 'Process',
  logging: 'Logging',
  metrics: 'Metrics',
  command: 'Command options',
} as const;
export type Section = keyof typeof SECTIONS;

/** An old spelling still accepted (with a deprecation warning) where users type it. */
export interface DeprecatedName {
  /** The old flag, without `--` (`--no-` of it too, for a boolean). */
  readonly flag: string;
  /** The old wsgid.json key. */
  readonly key?: string;
}

/**
 * One option. `T` is the kind it is typed as, `V` the setting's value once parsed (the kind's
 * value when there is no `parse`). parse and show are methods so a table of specific entries is
 * an OptionSpec table.
 */
export interface OptionSpec<T extends OptionType = OptionType, V = unknown> {
  /** Command-line flag without the leading `--`. */
  readonly flag: string;
  readonly type: T;
  readonly section: Section;
  /** Default value, parsed (a function when it depends on the environment); undefined → no default. */
  readonly default?: V | (() => V);
  /** How the default is shown in help/docs when it is computed. */
  readonly defaultLabel?: string;
  /** The commands that accept the flag. */
  readonly commands: readonly CommandName[];
  /** Placeholder in help text, e.g. ENDPOINT. */
  readonly metavar?: string;
  readonly help: string;
  /**
   * Where the option may be given: 'both' (flag and wsgid.json), 'cli' (flag only, never saved),
   * 'file' (wsgid.json only). Default 'both'.
   */
  readonly where?: 'both' | 'cli' | 'file';
  /** wsgid.json key when it differs from the flag rule (flag with `-` → `_`). */
  readonly key?: string;
  /** A check on a raw value that keeps it as it is; returns an error text ("expected …, got …") or undefined. */
  check?(value: ValueOf<T>): string | undefined;
  /** Turns the raw value into the setting's value (bytes, an address, an enum), or says why not. */
  parse?(raw: ValueOf<T>): V | Invalid;
  /** The raw form of a parsed value (for wsgid.json, generated command lines, messages). */
  show?(value: V): ValueOf<T>;
  /**
   * An environment variable that sets the option too (for settings one tunes per deployment or
   * in tests without editing wsgid.json). Precedence: command line, environment, wsgid.json,
   * default. Booleans take 1/0, true/false, yes/no.
   */
  readonly env?: string;
  /** Old names of `env`, still read when `env` is not set. */
  readonly envAliases?: readonly string[];
  /** Old flag / wsgid.json spellings, accepted with a deprecation warning. */
  readonly deprecated?: readonly DeprecatedName[];
  /**
   * A change takes effect on HUP (`wsgid restart`), through the rolling reload: the master re-reads
   * wsgid.json and its command line, and new workers start with the new value. Otherwise (absent)
   * a changed value needs a full restart (stop, start); HUP keeps the running value and says so.
   */
  readonly reloadable?: boolean;
}

/** Any entry of the table, of any kind. */
type AnyOption = { [T in OptionType]: OptionSpec<T, unknown> }[OptionType];

// ---------------------------------------------------------------------------------------------
// Checks

const ENDPOINT_EXAMPLE = 'tcp://127.0.0.1:9997';

/** A ZeroMQ endpoint wsgid can connect to: tcp://host:port or ipc://path. */
export function checkEndpoint(value: string): string | undefined {
  const bad = `expected a ZeroMQ endpoint like ${ENDPOINT_EXAMPLE} or ipc:///path/to/socket, got '${value}'`;
  const tcp = /^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+|\*):(\d{1,5})$/.exec(value);
  if (tcp) {
    const port = Number(tcp[2]);
    return port >= 1 && port <= 65535 ? undefined : `${bad} (port must be 1-65535)`;
  }
  if (value.startsWith('ipc://')) return value.length > 'ipc://'.length ? undefined : `${bad} (empty path)`;
  return bad;
}

const eachEndpoint = (values: string[]): string | undefined => {
  for (const v of values) {
    const problem = checkEndpoint(v);
    if (problem) return problem;
  }
  return undefined;
};

const atLeast = (min: number) => (n: number) =>
  n >= min ? undefined : `expected an integer >= ${min}, got ${n}`;

const between = (min: number, max: number) => (n: number) =>
  n >= min && n <= max ? undefined : `expected an integer from ${min} to ${max}, got ${n}`;

/**
 * More workers than this is a typo (--workers=1000 for 100), not a plan: each is a Node process
 * (tens of MB) and the master's loop visits every worker each tick.
 */
export const MAX_WORKERS = 256;

const SIGNAL_NAME = /^(SIG)?[A-Z0-9]+$/;
/** A signal given by name (TERM, SIGTERM) or number; normalized by the stop/restart commands. */
export function checkSignal(value: string): string | undefined {
  if (/^\d+$/.test(value) && Number(value) > 0 && Number(value) < 65) return undefined;
  const name = value.toUpperCase();
  if (SIGNAL_NAME.test(name)) {
    const full = name.startsWith('SIG') ? name : 'SIG' + name;
    if (full in osSignals()) return undefined;
  }
  return `expected a signal name like TERM, SIGINT or a number, got '${value}'`;
}

function osSignals(): Record<string, number> {
  return osConstants.signals as unknown as Record<string, number>;
}

const SIZE = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i;
const SIZE_UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** Bytes of a size like 512M, 1.5G, 200MB, 1048576 (binary units: K = 1024); undefined when not a size. */
export function parseSize(value: string): number | undefined {
  const m = SIZE.exec(value.trim());
  if (!m) return undefined;
  return Math.floor(Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!);
}

/** A size in the shortest form parseSize reads back to the same bytes (1048576 → 1M, 0 → 0). */
export function formatSize(bytes: number): string {
  for (const unit of ['t', 'g', 'm', 'k'] as const) {
    const factor = SIZE_UNITS[unit]!;
    if (bytes > 0 && bytes % factor === 0) return `${bytes / factor}${unit.toUpperCase()}`;
  }
  return String(bytes);
}

/** The parser and printer of a SIZE option: settings hold bytes. */
const SIZE_VALUE = {
  parse: (raw: string): number | Invalid =>
    parseSize(raw) ?? new Invalid(`expected a size like 200M, 1G or 0 (bytes; K, M, G, T = powers of 1024), got '${raw}'`),
  show: formatSize,
};

/** The parser and printer of a HOST:PORT option. */
const HOST_PORT_VALUE = {
  parse: (raw: string): HostPort | Invalid => {
    const parsed = parseHostPort(raw);
    return typeof parsed === 'string' ? new Invalid(parsed) : parsed;
  },
  show: formatHostPort,
};

/** The parser of an option that takes one of a few words. */
function oneOf<const W extends string>(...words: W[]): { parse(raw: string): W | Invalid } {
  const expected = words.length === 2 ? `${words[0]} or ${words[1]}` : words.join(', ');
  return { parse: (raw) => ((words as string[]).includes(raw) ? (raw as W) : new Invalid(`expected ${expected}, got '${raw}'`)) };
}

/** The formats of wsgid's log, the access log and captured app output. */
export const LOG_FORMATS = ['text', 'json'] as const;

/** systemd unit names: name.type, characters systemd allows (systemd.unit(5)). */
const checkUnitNames = (units: string[]): string | undefined => {
  for (const unit of units) {
    if (!/^[A-Za-z0-9:_.\\@-]+\.(service|socket|target|mount|automount|swap|path|timer|slice|scope|device)$/.test(unit)) {
      return `expected a unit name like mongrel2.service, got '${unit}'`;
    }
  }
  return undefined;
};

const checkEnvName = (env: Record<string, string>): string | undefined => {
  for (const name of Object.keys(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return `expected environment variable names, got '${name}'`;
  }
  return undefined;
};

// ---------------------------------------------------------------------------------------------
// The table

/** The start options; `systemd-unit` takes them too and writes the given ones into ExecStart; `dev` passes them on. */
const START: readonly CommandName[] = ['start', 'config', 'systemd-unit', 'dev'];
/** The options that say how mongrel2 reaches this app folder: `mongrel2-config` writes them into its Handler, `check` compares. */
const ENDPOINTS: readonly CommandName[] = ['start', 'config', 'systemd-unit', 'mongrel2-config', 'check'];
const ALL: readonly CommandName[] = COMMANDS;

export const OPTIONS = {
  appPath: {
    flag: 'app-path',
    section: 'folder',
    type: 'string',
    default: () => process.cwd(),
    defaultLabel: 'current directory',
    commands: ALL,
    metavar: 'DIR',
    where: 'cli',
    help: 'The wsgid app folder (holds app/, logs/, pid/, plugins/ and wsgid.json).',
  },
  recv: {
    flag: 'recv',
    section: 'mongrel2',
    type: 'list',
    default: [],
    commands: ENDPOINTS,
    metavar: 'ENDPOINT',
    help:
      "mongrel2 handler send_spec, where wsgid receives requests (e.g. tcp://127.0.0.1:9997). " +
      'Repeat for several mongrel2 servers; the i-th --recv pairs with the i-th --send.',
    check: eachEndpoint,
  },
  send: {
    flag: 'send',
    section: 'mongrel2',
    type: 'list',
    default: [],
    commands: ENDPOINTS,
    metavar: 'ENDPOINT',
    help: 'mongrel2 handler recv_spec, where wsgid publishes responses (e.g. tcp://127.0.0.1:9996).',
    check: eachEndpoint,
  },
  wsgiApp: {
    flag: 'wsgi-app',
    section: 'app',
    reloadable: true,
    type: 'string',
    commands: START,
    metavar: 'APP',
    help:
      'The app entry point: MODULE[:EXPORT] for JavaScript (relative to app/), dotted.path or module:attr ' +
      'for Python WSGI. Detected from app/ when not given.',
  },
  command: {
    flag: 'command',
    section: 'app',
    reloadable: true,
    type: 'string',
    commands: START,
    metavar: 'CMD',
    help:
      'Run the app with this command, in the worker, as its package.json start script would ' +
      '(e.g. "next start", "NODE_ENV=production node server.js", "fastify start -l info app.js"); ' +
      'the HTTP server it listens with is served. Default: the start script when it names a command.',
  },
  asgi: {
    flag: 'asgi',
    section: 'app',
    type: 'string',
    commands: START,
    metavar: 'MODULE:ATTR',
    help:
      'Serve a Python ASGI 3.0 app (FastAPI, Starlette, Django asgi.py) named module:attr, or `auto` to detect it ' +
      '(Django: get_asgi_application()). Without it an ASGI app is detected only where no WSGI app is (docs/asgi.md).',
  },
  workers: {
    flag: 'workers',
    section: 'workers',
    reloadable: true,
    type: 'int',
    default: 1,
    commands: START,
    metavar: 'N',
    help: `Worker processes (max ${MAX_WORKERS}); 0 serves in the master process.`,
    check: between(0, MAX_WORKERS),
  },
  workerConnections: {
    flag: 'worker-connections',
    section: 'workers',
    reloadable: true,
    type: 'int',
    default: 100,
    commands: START,
    metavar: 'N',
    help:
      'Requests one worker may handle at once (its credit with the master). An ASGI worker runs them all at once ' +
      'on its Python event loop.',
    check: atLeast(1),
  },
  respawn: {
    flag: 'respawn',
    section: 'workers',
    reloadable: true,
    type: 'bool',
    default: true,
    commands: START,
    deprecated: [{ flag: 'keep-alive', key: 'keep_alive' }],
    help: 'Respawn workers that die (with backoff). --no-respawn lets them stay dead.',
  },
  timeout: {
    flag: 'timeout',
    section: 'timeouts',
    reloadable: true,
    type: 'int',
    default: 30,
    commands: START,
    metavar: 'SECONDS',
    help:
      'A request whose response has not started (head sent) within this time gets a 504 and is cancelled in its worker ' +
      '(an ASGI task is cancelled; a WSGI thread cannot be, so that worker is replaced gracefully); a response that has ' +
      'started is never cut, however long it streams. Not gunicorn\'s worker-silence timeout: a worker whose event loop ' +
      'is blocked (no heartbeat for this long, at least 2 s) is killed and replaced. 0 disables.',
    check: atLeast(0),
  },
  bootTimeout: {
    flag: 'boot-timeout',
    section: 'timeouts',
    reloadable: true,
    type: 'int',
    default: 60,
    commands: START,
    metavar: 'SECONDS',
    help:
      'A worker not ready (app loaded, connected) within this time is killed (SIGTERM, SIGKILL 2 s later) ' +
      'and counts as a boot failure.',
    check: atLeast(1),
  },
  pingMs: {
    flag: 'ping-ms',
    section: 'timeouts',
    reloadable: true,
    type: 'int',
    default: 30_000,
    commands: START,
    metavar: 'MS',
    env: 'WSGID_PING_MS',
    envAliases: ['WSGID_KEEPALIVE_MS'],
    help:
      "While a response (event stream, long poll) or a WebSocket is open and quiet, refresh mongrel2's " +
      'idle timer (X ctl keep-alive) or ping the WebSocket every MS milliseconds. 0 never.',
    check: atLeast(0),
  },
  listenWaitMs: {
    flag: 'listen-wait-ms',
    section: 'app',
    reloadable: true,
    type: 'int',
    default: 5000,
    commands: START,
    metavar: 'MS',
    env: 'WSGID_LISTEN_WAIT_MS',
    help: 'How long to wait for a JavaScript app with no servable export to call listen() (e.g. after connecting to its database).',
    check: atLeast(0),
  },
  standardResponse: {
    flag: 'standard-response',
    section: 'app',
    reloadable: true,
    type: 'bool',
    default: false,
    commands: START,
    env: 'WSGID_STANDARD_RESPONSE',
    help:
      "Keep Node's own Response in fetch apps instead of wsgid's faster one that keeps its constructor " +
      'arguments (docs/INTERNALS.md).',
  },
  metrics: {
    flag: 'metrics',
    section: 'metrics',
    type: 'string',
    commands: START,
    metavar: 'HOST:PORT',
    env: 'WSGID_METRICS',
    help:
      'Serve Prometheus metrics at http://HOST:PORT/metrics (HOST defaults to 127.0.0.1; PORT 0 picks a free one). ' +
      'No authentication: not for the public internet (docs/METRICS.md).',
    ...HOST_PORT_VALUE,
  },
  metricsExpose: {
    flag: 'metrics-expose',
    section: 'metrics',
    type: 'bool',
    default: false,
    commands: START,
    help: 'Allow a --metrics address that is not loopback (anyone who reaches it can read the metrics).',
  },
  maxQueued: {
    flag: 'max-queued',
    section: 'workers',
    type: 'int',
    default: 10_000,
    commands: START,
    metavar: 'N',
    help:
      'Messages the master holds while every worker is busy (shared fairly among mongrel2 servers); ' +
      'beyond that a new request gets a 503.',
    check: atLeast(1),
  },
  wsgiPipeline: {
    flag: 'wsgi-pipeline',
    section: 'workers',
    reloadable: true,
    type: 'int',
    default: 8,
    commands: START,
    metavar: 'N',
    help:
      "Requests a WSGI worker hands its Python process at once counting one it runs (those waiting behind " +
      'go from one to the next without a round trip; with --threads, as many more as there are threads). 1 sends ' +
      'only what it can start.',
    check: atLeast(1),
  },
  threads: {
    flag: 'threads',
    section: 'workers',
    type: 'int',
    default: 1,
    commands: START,
    metavar: 'N',
    env: 'WSGID_THREADS',
    help:
      "Requests one WSGI worker runs at once: a pool of N threads in its Python process (gunicorn's gthread; " +
      "wsgi.multithread is then True). The master gives a new connection to a worker with a free thread first.",
    check: between(1, 256),
  },
  gracefulTimeout: {
    flag: 'graceful-timeout',
    section: 'timeouts',
    reloadable: true,
    type: 'int',
    default: 30,
    commands: START,
    metavar: 'SECONDS',
    help: 'On stop, restart and recycling, the time workers get to finish in-flight requests.',
    check: atLeast(0),
  },
  maxRequests: {
    flag: 'max-requests',
    section: 'recycling',
    reloadable: true,
    type: 'int',
    default: 0,
    commands: START,
    metavar: 'N',
    help: 'Recycle a worker (gracefully) after it served this many requests. 0 = never.',
    check: atLeast(0),
  },
  maxRequestsJitter: {
    flag: 'max-requests-jitter',
    section: 'recycling',
    reloadable: true,
    type: 'int',
    default: 0,
    commands: START,
    metavar: 'N',
    help: 'Add a random 0..N to --max-requests per worker, so workers do not recycle together.',
    check: atLeast(0),
  },
  maxMemory: {
    flag: 'max-memory',
    section: 'recycling',
    reloadable: true,
    type: 'string',
    default: 0,
    commands: START,
    metavar: 'SIZE',
    help:
      'Recycle a worker (gracefully, like --max-requests) whose memory (resident set of its Node process ' +
      'plus its Python process) stays above SIZE (e.g. 512M, 1G) in 3 samples in a row (one a second). 0 = never.',
    ...SIZE_VALUE,
  },
  uncreditedLimit: {
    flag: 'uncredited-limit',
    section: 'timeouts',
    reloadable: true,
    type: 'string',
    default: 0,
    commands: START,
    metavar: 'SIZE',
    help:
      "Without mongrel2's download credits (download.flow_control=1), cut a response after SIZE bytes (e.g. 256M): " +
      'nothing tells a handler how much such a client has read, so what it has not read waits in memory (in mongrel2, ' +
      "and briefly in the worker). The connection is closed, the app's request aborted as on a disconnect, and a " +
      'warning logged. Credited responses are never cut. 0 = never (a warning once a response passes 64 MB).',
    ...SIZE_VALUE,
  },
  crashWindow: {
    flag: 'crash-window',
    section: 'recycling',
    reloadable: true,
    type: 'int',
    default: 10,
    commands: START,
    metavar: 'SECONDS',
    help:
      'A worker that dies unexpectedly within SECONDS of becoming ready is respawned after an exponential ' +
      'backoff (1 s, 2 s, 4 s, … up to --crash-backoff-max); a replacement that serves SECONDS resets it. 0 = respawn at once.',
    check: atLeast(0),
  },
  crashLoopAfter: {
    flag: 'crash-loop-after',
    section: 'recycling',
    reloadable: true,
    type: 'int',
    default: 3,
    commands: START,
    metavar: 'N',
    help: 'After N such quick deaths in a row the master reports a crash loop (log, `wsgid status`, exit code 1).',
    check: atLeast(1),
  },
  crashBackoffMax: {
    flag: 'crash-backoff-max',
    section: 'recycling',
    reloadable: true,
    type: 'int',
    default: 60,
    commands: START,
    metavar: 'SECONDS',
    help: 'The longest wait before respawning a crash-looping worker.',
    check: atLeast(1),
  },
  noDaemon: {
    flag: 'no-daemon',
    section: 'process',
    type: 'bool',
    default: false,
    commands: START,
    help: 'Run in the foreground (for systemd, containers, supervisors); logs go to stderr.',
  },
  stdout: {
    flag: 'stdout',
    section: 'logging',
    type: 'bool',
    default: false,
    commands: START,
    help: 'With --no-daemon: log to stdout instead of stderr.',
  },
  debug: {
    flag: 'debug',
    section: 'logging',
    type: 'bool',
    default: false,
    commands: START,
    help: 'Log at debug level.',
  },
  accessLog: {
    flag: 'access-log',
    section: 'logging',
    type: 'bool',
    default: true,
    commands: START,
    help: 'Write an access log (Apache combined format) to logs/access.log (to the log stream with --no-daemon).',
  },
  logFormat: {
    flag: 'log-format',
    section: 'logging',
    type: 'string',
    default: 'text',
    commands: START,
    metavar: 'FORMAT',
    ...oneOf(...LOG_FORMATS),
    help: "text (default) or json: wsgid's log, the access log and captured app output as one pino-compatible JSON object per line (docs/LOGGING.md).",
  },
  appOutputRate: {
    flag: 'app-output-rate',
    section: 'logging',
    type: 'string',
    default: 2 ** 20,
    commands: START,
    metavar: 'SIZE',
    help:
      'Bytes of captured stdout/stderr (logs/app.log) each worker may write per second, with a burst of 4 s worth ' +
      '(e.g. 1M, 256K; 0 = no limit). Beyond it lines are dropped and counted in a "dropped" line (docs/LOGGING.md).',
    ...SIZE_VALUE,
  },
  chroot: {
    flag: 'chroot',
    section: 'process',
    type: 'bool',
    default: false,
    commands: START,
    help: 'chroot workers into the app folder before the app is loaded (needs root and the native addon).',
  },
  mongrel2Chroot: {
    flag: 'mongrel2-chroot',
    section: 'mongrel2',
    reloadable: true,
    type: 'string',
    default: '',
    commands: ENDPOINTS,
    metavar: 'DIR',
    help: "mongrel2's chroot folder, to find async upload files.",
  },
  mongrel2UploadStore: {
    flag: 'mongrel2-upload-store',
    section: 'mongrel2',
    reloadable: true,
    type: 'string',
    default: '/tmp/upload.XXXXXX',
    commands: START,
    metavar: 'TEMPLATE',
    help: "mongrel2's upload.temp_store, as its config writes it (inside --mongrel2-chroot): only files it names are taken as uploads, read and removed.",
  },
  loaderDir: {
    flag: 'loader-dir',
    section: 'app',
    reloadable: true,
    type: 'list',
    default: [],
    commands: START,
    metavar: 'DIR',
    help: 'Extra folder with app-loader plugins (besides plugins/ in the app folder).',
  },
  django: {
    flag: 'django',
    section: 'app',
    reloadable: true,
    type: 'bool',
    default: false,
    commands: START,
    help: 'Load the app with the Django loader (Python WSGI).',
  },
  python: {
    flag: 'python',
    section: 'app',
    reloadable: true,
    type: 'string',
    default: 'python3',
    commands: START,
    metavar: 'PATH',
    help: 'Python interpreter used for Python apps (WSGI and ASGI).',
  },
  envs: {
    flag: 'env',
    section: 'app',
    reloadable: true,
    key: 'envs',
    type: 'map',
    default: {},
    commands: START,
    metavar: 'KEY=VALUE',
    help: 'Environment variable for the app; in wsgid.json: "envs": {"KEY": "VALUE"}.',
    check: checkEnvName,
  },
  sendSignal: {
    flag: 'send-signal',
    section: 'command',
    type: 'string',
    commands: ['stop', 'restart', 'reload'],
    metavar: 'SIGNAL',
    where: 'cli',
    help: 'Signal to send to the master instead of the default (stop: TERM, restart: HUP). E.g. INT, QUIT, 9.',
    check: checkSignal,
  },
  after: {
    flag: 'after',
    section: 'command',
    type: 'list',
    default: [],
    commands: ['systemd-unit'],
    metavar: 'UNIT',
    where: 'cli',
    help: 'Order the service after this unit too and want it (After=, Wants=; besides network.target), e.g. the unit --mongrel2 prints.',
    check: checkUnitNames,
  },
  mongrel2: {
    flag: 'mongrel2',
    section: 'command',
    type: 'bool',
    default: false,
    commands: ['systemd-unit'],
    where: 'cli',
    help:
      "Print the unit for mongrel2 itself instead (WorkingDirectory= --mongrel2-chroot, m2sh load of the mongrel2.conf " +
      '`wsgid mongrel2-config` writes there, then mongrel2 with its uuid); order the wsgid unit after it with --after (docs/SYSTEMD.md).',
  },
  json: {
    flag: 'json',
    section: 'command',
    type: 'bool',
    default: false,
    commands: ['status'],
    where: 'cli',
    help: 'Print the status as JSON (schema in docs/STATUS.md).',
  },
  watch: {
    flag: 'watch',
    section: 'command',
    type: 'bool',
    default: false,
    commands: ['status'],
    where: 'cli',
    help: 'Redraw the status every second in the terminal, like top, until Ctrl-C.',
  },
  count: {
    flag: 'count',
    section: 'command',
    type: 'int',
    default: 0,
    commands: ['status'],
    where: 'cli',
    metavar: 'N',
    help: 'With --watch: stop after N frames (0: until Ctrl-C).',
    check: atLeast(0),
  },
  port: {
    flag: 'port',
    section: 'command',
    type: 'int',
    default: 8080,
    commands: ['mongrel2-config', 'dev'],
    where: 'cli',
    metavar: 'N',
    help: "mongrel2's HTTP port (dev: on 127.0.0.1; when the default 8080 is taken, a free one is picked and printed).",
    check: between(1, 65535),
  },
  host: {
    flag: 'host',
    section: 'command',
    type: 'string',
    default: 'localhost',
    commands: ['mongrel2-config'],
    where: 'cli',
    metavar: 'NAME',
    help: "The generated mongrel2 server's Host (and default host: requests for other names reach it too).",
    check: (value) => (/^[A-Za-z0-9.*-]+$/.test(value) ? undefined : `expected a host name like example.com, got '${value}'`),
  },
  mongrel2Db: {
    flag: 'mongrel2-db',
    section: 'command',
    type: 'string',
    commands: ['check'],
    where: 'cli',
    metavar: 'PATH',
    help: "mongrel2's config.sqlite (what `m2sh load` wrote) to check against this app folder's --recv/--send and --mongrel2-chroot.",
  },
  noWait: {
    flag: 'no-wait',
    section: 'command',
    type: 'bool',
    default: false,
    commands: ['restart', 'reload'],
    where: 'cli',
    help: 'Return once the signal is sent, without waiting for the new workers to be ready (or to fail).',
  },
} satisfies Record<string, AnyOption>;

// ---------------------------------------------------------------------------------------------
// The types the table gives

type Table = typeof OPTIONS;
export type OptionName = keyof Table;

/** The value of an entry: what its `parse` returns, else its kind's value. */
type ValueOfEntry<S> = S extends { parse(raw: never): infer V }
  ? Exclude<V, Invalid>
  : S extends { type: infer T extends OptionType }
    ? ValueOf<T>
    : never;
type WithDefault = { [K in OptionName]: Table[K] extends { default: unknown } ? K : never }[OptionName];

/** All option values: those with a default are always set, the others may be undefined. */
export type OptionValues = { [K in WithDefault]: ValueOfEntry<Table[K]> } & {
  [K in Exclude<OptionName, WithDefault>]?: ValueOfEntry<Table[K]>;
};

/** Values that only steer one command and are never part of Settings nor of wsgid.json. */
export const COMMAND_VALUE_NAMES = ['sendSignal', 'json', 'noWait', 'watch', 'count', 'after', 'mongrel2', 'port', 'host', 'mongrel2Db'] as const satisfies readonly OptionName[];
export type CommandValues = Pick<OptionValues, (typeof COMMAND_VALUE_NAMES)[number]>;

/** The table as a list, in declaration order, with the setting name attached. */
export interface NamedOption {
  readonly name: OptionName;
  readonly spec: OptionSpec;
}
export const OPTION_LIST: readonly NamedOption[] = (Object.keys(OPTIONS) as OptionName[]).map((name) => ({
  name,
  spec: OPTIONS[name] as OptionSpec,
}));

/** The wsgid.json key of an option. */
export function jsonKey(spec: OptionSpec): string {
  return spec.key ?? spec.flag.replace(/-/g, '_');
}

/** Options accepted on the command line of `command`. */
export function cliOptionsFor(command: CommandName): NamedOption[] {
  return OPTION_LIST.filter((o) => o.spec.where !== 'file' && o.spec.commands.includes(command));
}

/** Options allowed in wsgid.json. */
export function fileOptions(): NamedOption[] {
  return OPTION_LIST.filter((o) => (o.spec.where ?? 'both') !== 'cli');
}

/** The default value of an option (computed defaults are evaluated now); undefined when none. */
export function defaultOf(spec: OptionSpec): unknown {
  const d = spec.default;
  if (typeof d === 'function') return (d as () => unknown)();
  if (Array.isArray(d)) return [...d];
  if (d !== null && typeof d === 'object') return { ...d };
  return d;
}

/** Booleans that may be turned off with `--no-<flag>` (not those whose flag already starts with no-). */
export function isNegatable(spec: OptionSpec): boolean {
  return spec.type === 'bool' && !spec.flag.startsWith('no-');
}

/**
 * A raw value (of the option's kind) as the setting holds it: its own `check`, then its `parse`.
 * Returns the problem text when refused (the caller says where: flag, key, variable).
 */
export function parseValue(spec: OptionSpec, raw: ValueOf<OptionType>): { value: unknown } | { problem: string } {
  const check = spec.check as ((v: ValueOf<OptionType>) => string | undefined) | undefined;
  const problem = check?.(raw);
  if (problem !== undefined) return { problem };
  if (spec.parse === undefined) return { value: raw };
  const value = spec.parse(raw);
  return value instanceof Invalid ? { problem: value.problem } : { value };
}

/** The raw form of a setting's value (what parseValue reads back to it), for files and command lines. */
export function rawValue(spec: OptionSpec, value: unknown): ValueOf<OptionType> {
  return spec.show ? spec.show(value) : (value as ValueOf<OptionType>);
}
