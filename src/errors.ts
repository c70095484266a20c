/**
 * wsgid's errors and their codes, in one table (docs/ERRORS.md shows it to users; a unit test keeps
 * the two and the code in step). Errors raised on purpose carry a code, as Fastify's FST_ERR_* do,
 * and those the CLI reports carry the exit code it uses, so `wsgid` prints the message (no stack)
 * and exits meaningfully. mongrel2 protocol errors have codes of their own (M2_ERR_*,
 * protocol/types.ts).
 */

/** Every WSGID_ERR_* code, with what it means. */
export const ERROR_CODES = {
  WSGID_ERR_USAGE: 'bad command line: unknown option or command, bad value',
  WSGID_ERR_CONFIG: 'bad wsgid.json: unreadable, not JSON, unknown key or wrong type',
  WSGID_ERR_APP_FOLDER: 'the app folder or its app/ is missing or unusable',
  WSGID_ERR_RUNNING: 'start refused: a master of this app folder is already running',
  WSGID_ERR_SIGNAL: 'a signal could not be sent to the master',
  WSGID_ERR_PRIVILEGES: 'chroot or privilege drop failed, or is not possible here',
  WSGID_ERR_UNSAFE_PATH: 'a file or folder below the app folder is a symlink or not what wsgid expects (docs/SECURITY.md)',
  WSGID_ERR_APP_LOAD: 'the app could not be found or loaded (the message lists what was tried)',
  WSGID_ERR_BOOT: 'a worker could not start (connect to the master, load the app)',
  WSGID_ERR_RESPONSE_HEAD: "an app's response head would let a client split the response: answered 500",
  WSGID_ERR_REQUEST_FRAMING: 'a request whose body framing parsers could read two ways (request smuggling): answered 400 and closed',
  WSGID_ERR_WSGI_APP: 'a WSGI app raised an exception (the traceback is the message)',
  WSGID_ERR_ASGI_APP: 'an ASGI app raised an exception (the traceback is the message)',
  WSGID_ERR_MONGREL2: '`wsgid dev` could not run its private mongrel2 (not installed, `m2sh load` refused the config, it exited)',
  WSGID_ERR_RESOURCES: 'the process is out of a system resource, e.g. file descriptors (EMFILE): not a configuration error',
} as const;
export type ErrorCode = keyof typeof ERROR_CODES;

/** Exit codes of the `wsgid` command (documented in docs/CLI.md / `wsgid --help`). */
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
  /** The app failed to load (gunicorn's APP_LOAD_ERROR). */
  APP_LOAD: 4,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class WsgidError extends Error {
  constructor(
    message: string,
    readonly code: ErrorCode,
    readonly exitCode: ExitCode = EXIT.FAILURE,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** A bad command line. */
export class UsageError extends WsgidError {
  constructor(message: string) {
    super(message, 'WSGID_ERR_USAGE', EXIT.USAGE);
  }
}

/** A bad wsgid.json: names the file and, when known, the key. */
export class ConfigFileError extends WsgidError {
  constructor(
    readonly file: string,
    readonly key: string | undefined,
    problem: string,
  ) {
    super(key === undefined ? `${file}: ${problem}` : `${file}: key "${key}": ${problem}`, 'WSGID_ERR_CONFIG', EXIT.USAGE);
  }
}

/** The app folder (or its app/ subfolder) is missing or unusable. */
export class AppFolderError extends WsgidError {
  constructor(message: string) {
    super(message, 'WSGID_ERR_APP_FOLDER', EXIT.USAGE);
  }
}
