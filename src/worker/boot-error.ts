import { WsgidError } from '../errors.js';
import type { WorkerExitCode } from '../lifecycle/contract.js';
import type { LoadFailure } from './load-failure.js';

/**
 * Why a worker could not boot: WSGID_ERR_BOOT (exit 3: its config, log, dispatch socket, privilege
 * drop) or WSGID_ERR_APP_LOAD (exit 4: the app). The worker logs it, sends it to the master in its
 * 'fatal' message (lifecycle/contract.ts) and exits with its exit code.
 */
export class BootError extends WsgidError {
  declare readonly code: 'WSGID_ERR_BOOT' | 'WSGID_ERR_APP_LOAD';
  declare readonly exitCode: WorkerExitCode;
  constructor(
    message: string,
    code: 'WSGID_ERR_BOOT' | 'WSGID_ERR_APP_LOAD',
    cause?: unknown,
    /** What the user is shown (app load errors): a traceback or code frame, a hint. */
    readonly failure?: LoadFailure,
  ) {
    super(message, code, cause === undefined ? undefined : { cause });
  }
}
