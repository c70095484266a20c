/** Kept apart from ./index.ts so that describing a load failure does not load the WSGI gateway. */
import type { ErrorCode } from '../../errors.js';

/**
 * The app could not be imported: `traceback` is what `python -c 'import app'` would print
 * (bridge.py app_traceback), shown verbatim on the terminal of a failed start.
 */
export class WsgiLoadError extends Error {
  override readonly name = 'WsgiLoadError';
  readonly code: ErrorCode = 'WSGID_ERR_APP_LOAD';
  constructor(
    readonly python: string,
    readonly traceback: string,
  ) {
    super(`the WSGI app failed to load (${python}): ${traceback.trim().split('\n').at(-1) ?? ''}`);
  }
}

