/**
 * `wsgid check --mongrel2-db=PATH`: mongrel2's config.sqlite (mongrel2/db.ts) against this app
 * folder's settings (mongrel2/check.ts), one line per finding with its fix.
 */
import type { CommandValues } from '../config/options.js';
import type { Settings } from '../config/settings.js';
import { EXIT, UsageError } from '../errors.js';
import { checkAppFolderExists } from '../app-folder/layout.js';
import { checkMongrel2Db } from '../mongrel2/check.js';
import { readMongrel2Db } from '../mongrel2/db.js';
import type { Output } from './control.js';

export async function checkCommand(settings: Settings, values: CommandValues, io: Output): Promise<number> {
  if (values.mongrel2Db === undefined) throw new UsageError('wsgid check needs --mongrel2-db=PATH (the config.sqlite m2sh load wrote)');
  const { root } = checkAppFolderExists(settings.appPath);
  const db = await readMongrel2Db(values.mongrel2Db);
  const findings = checkMongrel2Db(db, { appPath: root, recv: settings.recv, send: settings.send, mongrel2Chroot: settings.mongrel2Chroot });
  for (const f of findings) {
    io.out(`${f.level}: ${f.message}\n`);
    if (f.fix) io.out(`  fix: ${f.fix}\n`);
  }
  const errors = findings.filter((f) => f.level === 'error').length;
  const warnings = findings.filter((f) => f.level === 'warning').length;
  io.out(`${errors} error(s), ${warnings} warning(s)\n`);
  return errors > 0 ? EXIT.FAILURE : EXIT.OK;
}
