/**
 * Run TypeScript apps from source. Installed only when the entry is a .ts/.mts/.cts file.
 */
import type { Logger } from '../log/logger.js';

let installed: Promise<void> | undefined;

/** Make `import()` (and `require()` from CommonJS) of .ts/.mts/.cts files work. Idempotent. */
export function enableTypeScript(logger: Logger): Promise<void> {
  installed ??= install(logger);
  return installed;
}

async function install(_logger: Logger): Promise<void> {
  throw new Error('TypeScript entries are not supported yet');
}
