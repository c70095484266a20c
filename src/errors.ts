/**
 * wsgid's errors, one family: every error class wsgid throws extends WsgidError, and
 * every code it carries is declared here once, with what it means and the exit code of a command
 * it ends, as Fastify declares its FST_ERR_* in lib/errors.js. docs/ERRORS.md shows the table to
 * users; test/unit/errors.test.ts keeps the two, the classes and the code in step. A thrown
 * WsgidError makes `wsgid` print its message (no stack) and exit with its code's exit code.
 */

/** Exit codes of the `wsgid` command and of its processes (documented in `wsgid --help`, docs/CLI.md). */
export const EXIT = {
  /** Success (for `status`: running). */
  OK: 0,
  /** The operation failed: the app could not start, stop timed out, a signal could not be sent. */
  FAILURE: 1,
  /** Bad usage: unknown option or command, bad option value, bad wsgid.json, no app folder. */
  USAGE: 2,
  /** Not running (`status`, `restart`, `reload`): LSB's "program is not running". For `start`: the
   *  workers could not boot (the master's exit code, gunicorn's WORKER_BOOT_ERROR). */
  NOT_RUNNING: 3,
  /** A worker could not boot (gunicorn's WORKER_BOOT_ERROR): the same 3 as NOT_RUNNING, which is
   *  what `start` exits with then. */
  BOOT: 3,
  /** The app failed to load (gunicorn's APP_LOAD_ERROR), for a worker, the master and `start`. */
  APP_LOAD: 4,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

interface ErrorSpec {
  readonly meaning: string;
  /** The exit code of a command (or process) this error ends; undefined: it never ends one (the
   *  daemon answers the request and keeps serving, or drops the message). */
  readonly exit: ExitCode | undefined;
}

/** Every code, with what it means and its exit code. */
export const ERRORS = {
  WSGID_ERR_USAGE: { exit: EXIT.USAGE, meaning: 'bad command line: unknown option or command, bad value' },
  WSGID_ERR_CONFIG: { exit: EXIT.USAGE, meaning: 'bad wsgid.json: unreadable, not JSON, unknown key or wrong type' },
  WSGID_ERR_APP_FOLDER: { exit: EXIT.USAGE, meaning: 'the app folder or its app/ is missing or unusable' },
  WSGID_ERR_RUNNING: { exit: EXIT.FAILURE, meaning: 'start refused: a master of this app folder is already running' },
  WSGID_ERR_SIGNAL: { exit: EXIT.FAILURE, meaning: 'a signal could not be sent to the master' },
  WSGID_ERR_NOT_MASTER: {
    exit: EXIT.FAILURE,
    meaning: 'a pid file names a live process that is not a wsgid master of this app folder: it is not signalled (docs/SECURITY.md)',
  },
  WSGID_ERR_PRIVILEGES: { exit: EXIT.FAILURE, meaning: 'chroot or privilege drop failed, or is not possible here' },
  WSGID_ERR_UNSAFE_PATH: {
    exit: EXIT.FAILURE,
    meaning: 'a file or folder below the app folder is a symlink or not what wsgid expects (docs/SECURITY.md)',
  },
  WSGID_ERR_APP_LOAD: { exit: EXIT.APP_LOAD, meaning: 'the app could not be found or loaded (the message lists what was tried)' },
  WSGID_ERR_BOOT: { exit: EXIT.BOOT, meaning: 'a worker could not start (its log, the connection to the master, chroot or privilege drop), the app aside' },
  WSGID_ERR_RESPONSE_HEAD: { exit: undefined, meaning: "an app's response head would let a client split the response: answered 500" },
  WSGID_ERR_REQUEST_FRAMING: {
    exit: undefined,
    meaning: 'a request whose body framing parsers could read two ways (request smuggling): answered 400 and closed',
  },
  WSGID_ERR_WSGI_APP: { exit: undefined, meaning: 'a WSGI app raised an exception (the traceback is the message)' },
  WSGID_ERR_ASGI_APP: { exit: undefined, meaning: 'an ASGI app raised an exception (the traceback is the message)' },
  WSGID_ERR_MONGREL2: {
    exit: EXIT.FAILURE,
    meaning: '`wsgid dev` could not run its private mongrel2 (not installed, `m2sh load` refused the config, it exited)',
  },
  WSGID_ERR_RESOURCES: {
    exit: EXIT.FAILURE,
    meaning: 'the process is out of a system resource, e.g. file descriptors (EMFILE): not a configuration error',
  },
  // A malformed message from mongrel2 (protocol/): logged, rate-limited, and dropped.
  M2_ERR_FRAME: { exit: undefined, meaning: 'a mongrel2 message lacks a space-separated field' },
  M2_ERR_SENDER: { exit: undefined, meaning: 'a mongrel2 sender id is not [A-Za-z0-9-]+' },
  M2_ERR_CONN_ID: { exit: undefined, meaning: 'a mongrel2 connection id is not a decimal uint32' },
  M2_ERR_NETSTRING: { exit: undefined, meaning: 'a netstring length prefix or terminator is wrong, or the netstring is truncated' },
  M2_ERR_TNETSTRING: { exit: undefined, meaning: 'a tnetstring value is malformed' },
  M2_ERR_HEADERS: { exit: undefined, meaning: 'mongrel2 headers are not a dict of strings or string lists' },
  M2_ERR_JSON: { exit: undefined, meaning: 'JSON headers or a JSON control body could not be parsed' },
  M2_ERR_TARGETS: { exit: undefined, meaning: 'a reply addressed to no connection id or to more than 128' },
} as const satisfies Record<string, ErrorSpec>;
export type ErrorCode = keyof typeof ERRORS;

/** The exit code of a command ended by an error with `code` (1 for one that never ends a command). */
export function exitCodeOf(code: ErrorCode): ExitCode {
  return ERRORS[code].exit ?? EXIT.FAILURE;
}

/** The root of the family: a message, its code, and the exit code that code has (ERRORS). */
export class WsgidError extends Error {
  readonly exitCode: ExitCode;
  constructor(
    message: string,
    readonly code: ErrorCode,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
    this.exitCode = exitCodeOf(code);
  }
}

/** A bad command line. */
export class UsageError extends WsgidError {
  constructor(message: string) {
    super(message, 'WSGID_ERR_USAGE');
  }
}

/** A bad wsgid.json: names the file and, when known, the key. */
export class ConfigFileError extends WsgidError {
  constructor(
    readonly file: string,
    readonly key: string | undefined,
    problem: string,
  ) {
    super(key === undefined ? `${file}: ${problem}` : `${file}: key "${key}": ${problem}`, 'WSGID_ERR_CONFIG');
  }
}

/** The app folder (or its app/ subfolder) is missing or unusable. */
export class AppFolderError extends WsgidError {
  constructor(message: string) {
    super(message, 'WSGID_ERR_APP_FOLDER');
  }
}

/** A live pid file names a process that is not this folder's master: the CLI refuses to signal it. */
export class NotMasterError extends WsgidError {
  constructor(
    readonly pid: number,
    file: string,
    appRoot: string,
    why: string,
  ) {
    super(`not signalling pid ${pid} (named by ${file}): it is not a wsgid master of ${appRoot}: ${why}`, 'WSGID_ERR_NOT_MASTER');
  }
}
