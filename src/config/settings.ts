/**
 * The resolved settings of one wsgid instance (command line over wsgid.json over defaults).
 * Every option is declared once in ./options.ts (flag, wsgid.json key, type, default, help text);
 * this interface is the typed result the rest of wsgid consumes.
 */
export interface Settings {
  /** Absolute path of the app folder (holds app/, logs/, pid/, plugins/, wsgid.json). */
  appPath: string;
  /** mongrel2 send_spec endpoints (wsgid PULLs requests). Index i pairs with send[i]. */
  recv: string[];
  /** mongrel2 recv_spec endpoints (wsgid PUBs responses). */
  send: string[];
  /** MODULE[:EXPORT] (JS) or dotted.path / module:attr (WSGI); undefined → detect. */
  wsgiApp?: string;
  /** Run the app with this command in the worker (`next start`); undefined → package.json start script. */
  command?: string;
  /** Serve a Python ASGI app: `module:attr`, or `auto` to detect it; undefined → WSGI first (docs/asgi.md). */
  asgi?: string;
  /** Worker processes; 0 = serve inside the master process (no dispatch hop). */
  workers: number;
  /** Requests one worker may hold at once (its credit). */
  workerConnections: number;
  /** Respawn dead workers. */
  keepAlive: boolean;
  /** Seconds a request may run before it is answered 504 and its worker replaced; 0 = off. */
  timeout: number;
  /** Seconds a worker may take to load the app and become ready before it is killed. */
  bootTimeout: number;
  /** Milliseconds between keep-alive messages for quiet open responses and WebSockets; 0 = never. */
  pingMs: number;
  /** Milliseconds to wait for an app without a servable export to call listen(). */
  listenWaitMs: number;
  /** Keep Node's own Response in fetch apps (no constructor-argument-keeping Response). */
  standardResponse: boolean;
  /** HOST:PORT of the Prometheus metrics endpoint; undefined = none. */
  metrics?: string;
  /** Allow a non-loopback metrics address. */
  metricsExpose: boolean;
  /** Messages the master may hold while every worker is busy (then 503). */
  maxQueued: number;
  /** Requests a WSGI worker hands its Python process at once beyond those it runs. */
  wsgiPipeline: number;
  /** Requests one WSGI worker's Python process runs at once (a thread pool; gunicorn's gthread). */
  threads: number;
  /** Seconds stopping workers get to finish in-flight requests. */
  gracefulTimeout: number;
  /** Recycle a worker after this many requests; 0 = never. */
  maxRequests: number;
  /** Random 0..N added to maxRequests per worker, so workers don't recycle together. */
  maxRequestsJitter: number;
  /** Recycle a worker whose RSS (Node + Python) stays above this size (e.g. '512M'); '0' = never. */
  maxMemory: string;
  /** Cut a response sent without download credits after this size (e.g. '256M'); '0' = never. */
  uncreditedLimit: string;
  /** Seconds after becoming ready within which an unexpected death counts as a quick one (crash loop); 0 = off. */
  crashWindow: number;
  /** Quick deaths in a row after which the master reports a crash loop. */
  crashLoopAfter: number;
  /** Seconds: the crash-loop respawn backoff's cap. */
  crashBackoffMax: number;
  /** Run in the foreground (no detach). */
  noDaemon: boolean;
  /** Log to stdout instead of logs/wsgid.log (foreground) */
  stdout: boolean;
  debug: boolean;
  /** Write an access log (logs/access.log, or the log stream with --stdout). */
  accessLog: boolean;
  /** 'text' (default) or 'json' (pino-compatible lines): wsgid's log, the access log, app output. */
  logFormat: string;
  /** Captured app output each worker may write per second (SIZE, e.g. 1M; 0 = no limit). */
  appOutputRate: string;
  /** chroot into appPath before loading the app, then drop privileges to its owner. */
  chroot: boolean;
  /** mongrel2's chroot folder, to resolve async upload paths. */
  mongrel2Chroot: string;
  /** mongrel2's upload.temp_store (an mkstemp template inside mongrel2Chroot): the only upload files accepted. */
  mongrel2UploadStore: string;
  /** Extra folders with loader plugins (in addition to appPath/plugins). */
  loaderDir: string[];
  /** Force the Django loader (WSGI). */
  django: boolean;
  /** Python interpreter for WSGI apps. */
  python: string;
  /** Environment variables given to the app. */
  envs: Record<string, string>;
}
