/**
 * Errors the configuration and CLI layers raise on purpose. Each carries a code and the process
 * exit code the CLI uses for it, so `wsgid` prints the message (no stack) and exits meaningfully.
 */

/** Exit codes of the `wsgid` command (documented in README / `wsgid --help`). */
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
    readonly code: string,
    readonly exitCode: ExitCode = EXIT.FAILURE,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** A bad command line. */
export class UsageError extends WsgidError {
  constructor(message: string) {
    super(message, 'WSGID_USAGE', EXIT.USAGE);
  }
}

/** A bad wsgid.json: names the file and, when known, the key. */
export class ConfigFileError extends WsgidError {
  constructor(
    readonly file: string,
    readonly key: string | undefined,
    problem: string,
  ) {
    super(key === undefined ? `${file}: ${problem}` : `${file}: key "${key}": ${problem}`, 'WSGID_CONFIG', EXIT.USAGE);
  }
}

/** The app folder (or its app/ subfolder) is missing or unusable. */
export class AppFolderError extends WsgidError {
  constructor(message: string) {
    super(message, 'WSGID_APP_FOLDER', EXIT.USAGE);
  }
}
