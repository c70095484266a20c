/**
 * Client disconnects through a real mongrel2: the in-flight request learns it (fetch: request.signal
 * aborts), an endless streaming response stops (its ReadableStream's cancel() runs), nothing more
 * is sent, and the worker goes on serving. Single process and through the master.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from '../helpers/http.js';
import { eventually, OpenClient, type PushServer, usePushServer } from '../helpers/push.js';

for (const workers of [0, 1]) {
  describe(`client disconnects (--workers=${workers})`, () => {
    let s!: PushServer;
    usePushServer({ workers }, (server) => (s = server));

    async function recordOf(id: string): Promise<{ started: boolean; aborted: boolean; cancelled: boolean; reason: string } | null> {
      const res = await request(`${s.url}/record?id=${id}`);
      assert.equal(res.status, 200);
      return JSON.parse(res.text) as { started: boolean; aborted: boolean; cancelled: boolean; reason: string } | null;
    }

    test('an idle event stream: the client leaves → signal aborts and the stream is cancelled', async () => {
      const id = `idle-${workers}`;
      const client = new OpenClient(s.m2.port, `/events?id=${id}`);
      await client.waitFor(/event: hello\ndata: \d+\n\n/);
      assert.match(client.text, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(client.text, /transfer-encoding: chunked/i);
      client.destroy();
      const r = await eventually('the app to see the abort and the cancel', async () => {
        const rec = await recordOf(id);
        return rec?.aborted && rec.cancelled ? rec : undefined;
      });
      assert.match(r!.reason, /client disconnected/);
    });

    test('a busy event stream (an event every 20 ms): stopped as well, the worker keeps serving', async () => {
      const id = `busy-${workers}`;
      const client = new OpenClient(s.m2.port, `/events?id=${id}&every=20`);
      await client.waitFor(/data: tick 3\n/);
      client.destroy();
      await eventually('abort + cancel', async () => {
        const rec = await recordOf(id);
        return rec?.aborted && rec.cancelled;
      });
      const clients = JSON.parse((await request(`${s.url}/clients`)).text) as number[];
      assert.deepEqual(clients, [], 'no stream left open');
      const res = await request(`${s.url}/`);
      assert.equal(res.text, 'ok');
      assert.doesNotMatch(s.wsgid.output(), /app error|gateway failed/, s.diagnostics());
    });

    test('credits messages are not disconnects: with download.flow_control the stream lives on', async () => {
      // Covered with flow control on in flow-control.test.ts; here: a long stream whose client stays.
      const id = `stay-${workers}`;
      const client = new OpenClient(s.m2.port, `/events?id=${id}&every=10`);
      await client.waitFor(/data: tick 30\n/);
      const rec = await recordOf(id);
      assert.equal(rec?.aborted, false);
      client.destroy();
    });
  });
}
