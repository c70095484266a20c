/** Settings for unit tests: wsgid's real defaults (from the option table), quiet, for one app folder. */
import type { Settings } from '../../src/config/settings.js';
import { mergeValues, splitValues } from '../../src/config/resolve.js';

export function testSettings(appPath: string, extra: Partial<Settings> = {}): Settings {
  const { settings } = splitValues(mergeValues({}, {}));
  return { ...settings, appPath, noDaemon: true, stdout: true, accessLog: false, ...extra };
}
