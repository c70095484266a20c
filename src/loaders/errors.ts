import { WsgidError } from '../errors.js';

/** The error a loader throws when it cannot produce an app; lists what it tried. */
export class AppLoadError extends WsgidError {
  constructor(
    message: string,
    /** Every candidate looked at, in order (files, package fields, plugins, exports). */
    readonly tried: readonly string[] = [],
    options?: { cause?: unknown; file?: string },
  ) {
    super(tried.length ? `${message}\n  tried:\n${tried.map((item) => `    - ${item}`).join('\n')}` : message, 'WSGID_ERR_APP_LOAD', options);
    this.file = options?.file;
  }
  /** The file whose import failed (the cause is what the import threw), when that is the problem. */
  readonly file: string | undefined;
}
