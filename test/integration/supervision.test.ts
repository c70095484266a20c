/**
 * Process supervision against real processes: a worker hung at boot is killed, workers
 * never outlive their master, requests whose reply may have died in a frozen worker are answered.
 * Real mongrel2, the wsgid CLI in the foreground, real HTTP clients. No assertion on elapsed time:
 * every wait polls for its condition with a generous bound.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, rm, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Push } from 'zeromq';
import { freePorts, startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { RawConnection, request } from '../helpers/http.js';
import { startWsgid, wsgidArgs, type WsgidProcess } from '../helpers/wsgid.js';
import { alive, appFolderWith, waitFor, workerPids } from '../helpers/processes.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function makeApp(source: string): Promise<string> {
  return appFolderWith(source, 'wsgid-sup-');
}




/** Is `pid` a zombie or gone? (A SIGKILLed orphan reparented to a busy init may linger as a zombie.) */
async function dead(pid: number): Promise<boolean> {
  if (!alive(pid)) return true;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat === '' || / Z /.test(stat.slice(stat.lastIndexOf(')')));
}

describe('supervision', { timeout: 300_000 }, () => {
  let m2: Mongrel2Handle;
  const dirs: string[] = [];
  const started: WsgidProcess[] = [];

  before(async () => {
    m2 = await startMongrel2();
  });
  after(async () => {
    for (const w of started) await w.stop('SIGKILL', 5000);
    await m2?.stop();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  test('a worker hung at boot (blocked, deaf to SIGTERM) is killed at the boot timeout', async () => {
    // Blocks its import forever without burning CPU; its event loop never runs again.
    const dir = await makeApp(`Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);\nexport default { fetch: () => new Response('x') };\n`);
    dirs.push(dir);
    const w = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--workers=1', '--boot-timeout=1']));
    started.push(w);
    const [first] = await waitFor('a booting worker', async () => {
      const pids = await workerPids(dir);
      return pids.length > 0 ? pids : undefined;
    });
    await waitFor(`worker ${first} killed`, () => dead(first!), 60_000);
    // The master logs the kill and the failed boot once it has reaped the worker, a moment after it died.
    await w.waitForOutput(/did not become ready in time/, 30_000);
    await w.waitForOutput(/worker failed to boot/, 30_000);
    await w.stop('SIGTERM', 20_000);
    // Its replacements (spawned with backoff) are gone as well once the master is.
    await waitFor('no worker left', async () => (await workerPids(dir)).length === 0, 20_000);
  });

  // The master dies (kill -9) while a new worker is still importing the app: the worker must go too.
  // 'sync': the import blocks the event loop (only the watchdog thread can act); 'async': it awaits.
  for (const mode of ['sync', 'async'] as const) {
    test(`a worker still booting (${mode} import) exits when its master is killed`, async () => {
      const dir = await makeApp(`
import { existsSync } from 'node:fs';
const block = ${JSON.stringify('BLOCK')}, go = ${JSON.stringify('GO')};
if (existsSync(block)) {
  while (!existsSync(go)) {
    ${mode === 'sync' ? 'Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);' : 'await new Promise((r) => setTimeout(r, 50));'}
  }
}
export default { fetch: () => new Response('pid=' + process.pid) };
`);
      dirs.push(dir);
      // Paths relative to the worker's cwd (the app folder).
      const source = (await readFile(path.join(dir, 'app', 'server.mjs'), 'utf8')).replace('"BLOCK"', JSON.stringify(path.join(dir, 'block'))).replace('"GO"', JSON.stringify(path.join(dir, 'go')));
      await writeFile(path.join(dir, 'app', 'server.mjs'), source);
      const w = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--workers=1']), { readyUrl: `${m2.baseUrl}/ready` });
      started.push(w);
      const first = await waitFor('the first worker', async () => {
        const pids = await workerPids(dir);
        return pids.length === 1 ? pids : undefined;
      });
      await writeFile(path.join(dir, 'block'), '');
      process.kill(w.pid, 'SIGTTIN');
      const [booting] = await waitFor('a second, booting worker', async () => {
        const pids = (await workerPids(dir)).filter((p) => !first.includes(p));
        return pids.length === 1 ? pids : undefined;
      });
      // It is inside the app's import now (or about to be): kill the master.
      await sleep(300);
      assert.ok(!existsSync(path.join(dir, 'go')));
      process.kill(w.pid, 'SIGKILL');
      await w.exited;
      await waitFor(`the booting worker ${booting} gone`, () => dead(booting!), 30_000);
      await waitFor(`the serving worker ${first[0]} gone`, () => dead(first[0]!), 30_000);
    });
  }

  test('SIGTERM while the workers still boot: a clean stop, exit 0 (not "exited before it was ready")', async () => {
    // The app's import waits for a file that never comes: its worker stays booting.
    const dir = await makeApp(`import { existsSync } from 'node:fs';\nwhile (!existsSync('never')) await new Promise((r) => setTimeout(r, 50));\nexport default { fetch: () => new Response('x') };\n`);
    dirs.push(dir);
    const w = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--workers=1', '--graceful-timeout=2']));
    started.push(w);
    await waitFor('a booting worker', async () => {
      const pids = await workerPids(dir);
      return pids.length > 0 ? pids : undefined;
    });
    assert.equal(await w.stop('SIGTERM', 60_000), 0, w.output());
  });

  test('a worker frozen (SIGSTOP) under load, then killed: every client gets a response or a close', async () => {
    // Big replies keep ZeroMQ's queue in the worker busy, so a freeze catches replies the worker
    // already reported done but that had not left it.
    const dir = await makeApp(`const body = 'x'.repeat(256 * 1024);\nexport default { fetch: () => new Response(body) };\n`);
    dirs.push(dir);
    const w = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--workers=2', '--timeout=2', '--graceful-timeout=1']), {
      readyUrl: `${m2.baseUrl}/ready`,
    });
    started.push(w);
    let stop = false;
    let answered = 0;
    let closed = 0;
    const statuses: Record<number, number> = {};
    const lost: string[] = [];
    // Keep-alive clients (as wrk): a connection stays with its worker between requests.
    const host = new URL(m2.baseUrl).host;
    const client = async (): Promise<void> => {
      while (!stop) {
        let conn: RawConnection;
        try {
          conn = await RawConnection.connect(m2.baseUrl, { timeoutMs: 25_000 });
        } catch {
          continue;
        }
        try {
          while (!stop) {
            conn.write(`GET /big HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
            const res = await conn.readResponse();
            answered++;
            if (res.status !== 200) {
              statuses[res.status] = (statuses[res.status] ?? 0) + 1;
              break; // our answers close the connection
            }
          }
        } catch (err) {
          if (/timed out/.test(String(err))) lost.push(String(err).slice(0, 120));
          else closed++; // the connection was closed: the client knows
        } finally {
          conn.destroy();
        }
      }
    };
    const clients = Array.from({ length: 16 }, client);
    try {
      for (let round = 0; round < 3; round++) {
        const pids = await waitFor('two workers', async () => {
          const p = await workerPids(dir);
          return p.length === 2 ? p : undefined;
        });
        await waitFor('requests flowing', async () => answered > 0 || undefined);
        await sleep(300);
        const victim = pids[round % 2]!;
        process.kill(victim, 'SIGSTOP');
        await waitFor(`frozen worker ${victim} killed`, () => dead(victim), 60_000);
      }
    } finally {
      stop = true;
      await Promise.all(clients);
    }
    console.log(`# frozen workers: ${answered} answered (not 200: ${JSON.stringify(statuses)}), ${closed} closed, ${lost.length} lost`);
    assert.deepEqual(lost, [], `${lost.length} requests neither answered nor closed`);
    assert.ok(answered > 0);
  });

  test('a mongrel2 flooding malformed messages with NUL bytes: a few log lines, escaped; clients still served', async () => {
    const dir = await makeApp(`export default { fetch: () => new Response('ok') };\n`);
    dirs.push(dir);
    // A second "mongrel2 server" played by the test; peekable frames whose headers do not parse.
    const [pushPort, subPort] = await freePorts(2);
    const push = new Push();
    await push.bind(`tcp://127.0.0.1:${pushPort}`);
    const app = m2.handler('app');
    const w = await startWsgid(
      wsgidArgs(app, dir, ['--workers=1', `--recv=tcp://127.0.0.1:${pushPort}`, `--send=tcp://127.0.0.1:${subPort}`]),
      { readyUrl: `${m2.baseUrl}/ready` },
    );
    started.push(w);
    try {
      for (let i = 0; i < 300; i++) await push.send(Buffer.from(`evil-1 ${i + 1} /x 6:\0\0{\0\x1b[,0:,`, 'latin1'));
      await w.waitForOutput(/dropped a malformed message/, 20_000);
      await waitFor('the flood handled', async () => {
        const res = await request(`${m2.baseUrl}/after`);
        return res.text === 'ok' || undefined;
      });
      await sleep(1500);
      const out = w.output();
      const lines = out.split('\n').filter((l) => /dropped a malformed message/.test(l));
      assert.ok(lines.length >= 1 && lines.length <= 10, `${lines.length} log lines:\n${lines.slice(0, 5).join('\n')}`);
      assert.doesNotMatch(out, /[\x00\x1b]/, 'no raw NUL or ESC in the log');
      assert.match(lines.join('\n'), /\\u0000/);
    } finally {
      push.close();
    }
  });
});
