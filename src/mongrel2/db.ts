/**
 * Read what `wsgid check` needs from mongrel2's config.sqlite with the `sqlite3` command (Debian's
 * sqlite3 package): read-only, one query whose answer is JSON (SQLite's json functions), so no
 * native module is needed.
 */
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { UsageError, WsgidError } from '../errors.js';
import type { Mongrel2Db } from './check.js';

const QUERY = `SELECT json_object(
  'handlers', (SELECT json_group_array(json_object('id', id, 'send_spec', send_spec, 'send_ident', send_ident,
                 'recv_spec', recv_spec, 'recv_ident', coalesce(recv_ident, ''), 'protocol', coalesce(protocol, 'json'))) FROM handler),
  'routes', (SELECT json_group_array(json_object('path', path, 'host_id', host_id, 'target_id', target_id, 'target_type', target_type)) FROM route),
  'hosts', (SELECT json_group_array(json_object('id', id, 'server_id', server_id, 'name', name)) FROM host),
  'servers', (SELECT json_group_array(json_object('id', id, 'uuid', uuid, 'name', name, 'chroot', coalesce(chroot, '/var/www'))) FROM server),
  'settings', (SELECT json_group_array(json_object('key', key, 'value', CAST(value AS TEXT))) FROM setting));`;

export function readMongrel2Db(file: string, sqlite3 = process.env.SQLITE3_BIN ?? 'sqlite3'): Promise<Mongrel2Db> {
  try {
    if (!statSync(file).isFile()) throw new UsageError(`--mongrel2-db=${file} is not a file`);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`--mongrel2-db=${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
  return new Promise((resolve, reject) => {
    execFile(sqlite3, ['-readonly', '-batch', file, QUERY], { timeout: 30_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) {
        const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
        reject(
          new WsgidError(
            missing ? `${sqlite3} not found: install it (Debian: apt-get install sqlite3), or set SQLITE3_BIN` : `cannot read ${file} as mongrel2's config database: ${stderr.trim() || error.message}`,
            'WSGID_ERR_MONGREL2',
          ),
        );
        return;
      }
      try {
        resolve(JSON.parse(stdout) as Mongrel2Db);
      } catch {
        reject(new WsgidError(`cannot read ${file}: sqlite3 answered ${JSON.stringify(stdout.slice(0, 200))}`, 'WSGID_ERR_MONGREL2'));
      }
    });
  });
}
