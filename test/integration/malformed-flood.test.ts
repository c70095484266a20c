/**
 * A peer on the handler endpoints sending malformed messages must not make the master
 * hold memory for them. Frames the master can peek (sender, connection id) but whose headers do not
 * parse go to a worker, which drops them; the master kept a route per connection id until the idle
 * sweep an hour later, so 300 000 of them grew the master for good. The worker now says it dropped
 * them ('X'), and the master forgets those connections. Checked where a user can see it: the
 * routes the master holds (`connections` in pid/status.json) go back to none, the flood is still
 * counted as received, and a second flood does not grow the master's RSS further (a generous bound:
 * allocator and V8 keep some of the first flood's pages, which is not a leak).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startWsgid, wsgidArgs, type WsgidProcess } from '../helpers/wsgid.js';
import { appFolderWith, waitFor } from '../helpers/processes.js';
import { startFakeMongrel2, type FakeMongrel2 } from '../helpers/fake-mongrel2.js';

const MB = 1024 * 1024;
const ROUND = 100_000;

interface Status {
  connections?: number;
  requests: { received: number; inFlight: number; queued: number; malformed: number };
}

describe('a flood of malformed messages from a handler peer', () => {
  let peer: FakeMongrel2;
  let wsgid: WsgidProcess;
  let dir: string;

  before(async () => {
    dir = await appFolderWith(`export default { fetch: () => new Response('ok') };\n`, 'wsgid-flood-');
    peer = await startFakeMongrel2();
    wsgid = await startWsgid(wsgidArgs({ recv: peer.recv, send: peer.send }, dir, ['--workers=1', '--stdout']));
    await wsgid.waitForOutput(/\[master \d+\] ready\b/, 30_000);
  });

  after(async () => {
    await wsgid?.stop();
    peer?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const status = (): Status | undefined => {
    try {
      return JSON.parse(readFileSync(path.join(dir, 'pid', 'status.json'), 'utf8')) as Status;
    } catch {
      return undefined;
    }
  };
  const rss = (): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${wsgid.pid}/status`, 'utf8'))![1]) * 1024;

  /** ROUND frames with connection ids from `first`, headers that do not parse; wait until all are handled. */
  async function flood(first: number): Promise<Status> {
    const before = status()?.requests.received ?? 0;
    for (let i = 0; i < ROUND; i++) await peer.sendRaw(Buffer.from(`${peer.sender} ${first + i} /x 6:\0\0{\0\x1b[,0:,`, 'latin1'));
    return waitFor(
      'the flood to be handled',
      async () => {
        const s = status();
        return s !== undefined && s.requests.received >= before + ROUND && s.requests.inFlight === 0 && s.requests.queued === 0 && s;
      },
      120_000,
    );
  }

  test('the master keeps no route per malformed message, and a second flood does not grow it', { timeout: 300_000 }, async () => {
    const baseline = rss();
    await flood(1);
    // Status is written every second: wait for the one after the last report.
    const first = await waitFor('the routes to be forgotten', async () => (status()?.connections ?? Infinity) <= 5 && status(), 30_000);
    assert.ok(first.connections !== undefined && first.connections <= 5, `${first.connections} routes kept`);
    const afterFirst = rss();
    await flood(1 + ROUND);
    await waitFor('the routes to be forgotten', async () => (status()?.connections ?? Infinity) <= 5, 30_000);
    const afterSecond = rss();
    console.log(`# master RSS: ${(baseline / MB).toFixed(1)} MB, after ${ROUND} malformed messages ${(afterFirst / MB).toFixed(1)} MB, after ${2 * ROUND} ${(afterSecond / MB).toFixed(1)} MB`);
    assert.ok(afterSecond - afterFirst < 30 * MB, `the second flood grew the master by ${((afterSecond - afterFirst) / MB).toFixed(1)} MB`);
    assert.ok(afterSecond - baseline < 150 * MB, `the master grew by ${((afterSecond - baseline) / MB).toFixed(1)} MB`);
    await wsgid.waitForOutput(/dropped a malformed message/);
  });
});
