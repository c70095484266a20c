/**
 * `wsgid check --mongrel2-db=PATH` on databases the real `m2sh load` wrote: the config
 * `wsgid mongrel2-config` prints passes; one written by hand with the usual mistakes (specs
 * crossed, an `_` in the send_ident, limits.content_length 1024, no download credits) fails with
 * each named and its fix, and so does wsgid without --mongrel2-chroot when uploads are on.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { M2SH_BIN } from '../helpers/mongrel2.js';
import { runCli } from '../helpers/processes.js';

function m2shLoad(dir: string, config: string): Promise<string> {
  return writeFile(path.join(dir, 'mongrel2.conf'), config).then(
    () =>
      new Promise((resolve, reject) => {
        execFile(M2SH_BIN, ['load', '-config', 'mongrel2.conf', '-db', 'config.sqlite'], { cwd: dir, env: { ...process.env, LOGNAME: 'root' } }, (error, stdout, stderr) =>
          error ? reject(new Error(`m2sh load failed: ${stdout}${stderr}`)) : resolve(path.join(dir, 'config.sqlite')),
        );
      }),
  );
}

const MISTAKES = (chroot: string) => `
site = Handler(send_spec='tcp://127.0.0.1:9996', send_ident='my_site',
               recv_spec='tcp://127.0.0.1:9997', recv_ident='', protocol='json')
main = Server(uuid="f400bf85-4538-4f7a-8908-67e313d515c2", chroot="${chroot}",
              access_log="/logs/access.log", error_log="/logs/error.log", pid_file="/run/mongrel2.pid",
              default_host="localhost", name="main", port=8080,
              hosts=[Host(name="localhost", routes={'/': site})])
settings = {"upload.temp_store": "/tmp/upload.XXXXXX", "limits.content_length": 1024}
servers = [main]
`;

describe('wsgid check --mongrel2-db', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  async function site(): Promise<{ chroot: string; site: string }> {
    const chroot = await mkdtemp(path.join(os.tmpdir(), 'wsgid-check-'));
    dirs.push(chroot);
    const dir = path.join(chroot, 'site');
    assert.equal((await runCli(['init', `--app-path=${dir}`])).code, 0);
    const saved = await runCli(['config', `--app-path=${dir}`, '--recv=tcp://127.0.0.1:9997', '--send=tcp://127.0.0.1:9996', `--mongrel2-chroot=${chroot}`]);
    assert.equal(saved.code, 0, saved.stderr);
    return { chroot, site: dir };
  }

  test("the config mongrel2-config prints passes", async () => {
    const { chroot, site: dir } = await site();
    const generated = await runCli(['mongrel2-config', `--app-path=${dir}`]);
    assert.equal(generated.code, 0, generated.stderr);
    const db = await m2shLoad(chroot, generated.stdout);
    const result = await runCli(['check', `--app-path=${dir}`, `--mongrel2-db=${db}`]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /^ok: Handler\(send_spec='tcp:\/\/127\.0\.0\.1:9997', recv_spec='tcp:\/\/127\.0\.0\.1:9996'\) matches/m);
    assert.match(result.stdout, /^0 error\(s\), 0 warning\(s\)$/m);
  });

  test('a hand-written config with the usual mistakes: each is named, with its fix; exit 1', async () => {
    const { chroot, site: dir } = await site();
    const db = await m2shLoad(chroot, MISTAKES(chroot));
    const result = await runCli(['check', `--app-path=${dir}`, `--mongrel2-db=${db}`]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    const out = result.stdout;
    assert.match(out, /^error: --recv=tcp:\/\/127\.0\.0\.1:9997 --send=tcp:\/\/127\.0\.0\.1:9996 are crossed/m);
    assert.match(out, /fix: wsgid config --app-path=\S+ --recv=tcp:\/\/127\.0\.0\.1:9996 --send=tcp:\/\/127\.0\.0\.1:9997/);
    assert.match(out, /^error: send_ident 'my_site' has characters other than \[A-Za-z0-9-\]/m);
    assert.match(out, /^error: limits\.content_length is 1024: below 4096/m);
    assert.match(out, /^warning: download\.flow_control is off/m);
    assert.match(out, /^warning: protocol 'json'/m);
    assert.equal(result.stderr, '');

    const noChroot = await runCli(['check', `--app-path=${dir}`, `--mongrel2-db=${db}`, '--mongrel2-chroot=']);
    assert.match(noChroot.stdout, new RegExp(`^error: uploads .* wsgid has no --mongrel2-chroot[^\\n]*\\n  fix: wsgid config --app-path=\\S+ --mongrel2-chroot=${chroot}$`, 'm'));
  });

  test('a missing database is a usage error without a stack trace', async () => {
    const { site: dir } = await site();
    const result = await runCli(['check', `--app-path=${dir}`, `--mongrel2-db=${path.join(dir, 'nope.sqlite')}`]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--mongrel2-db=\S+nope\.sqlite: no such file/);
    assert.doesNotMatch(result.stderr, /\n\s+at /);
  });
});
