/**
 * One message to many connections (mongrel2 multi-id replies) through a real mongrel2: three event
 * stream clients, a fourth request broadcasts, all three receive it, in the stream's chunked framing.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from '../helpers/http.js';
import { eventually, OpenClient, type PushServer, usePushServer } from '../helpers/push.js';

for (const workers of [0, 1, 2]) {
  describe(`broadcast (--workers=${workers})`, () => {
    let s!: PushServer;
    usePushServer({ workers }, (server) => (s = server));

    test('three event streams, a fourth request broadcasts: all three receive it', async () => {
      const clients = [0, 1, 2].map((i) => new OpenClient(s.m2.port, `/events?id=b${workers}-${i}`));
      const ids = await Promise.all(clients.map(async (c) => Number((await c.waitFor(/data: (\d+)\n\n/))[1])));
      assert.equal(new Set(ids).size, 3);
      // With several workers each holds its own streams: name the ids explicitly (what a chat app
      // keeps in a shared store); connections of other workers get mongrel2 multi-id replies.
      const say = await request(`${s.url}/say?msg=hello-all&ids=${ids.join(',')}`);
      assert.equal(say.status, 200, s.diagnostics());
      assert.equal((JSON.parse(say.text) as { sent: number }).sent, 3);
      for (const c of clients) {
        // One well-formed HTTP chunk holding the event.
        const m = await c.waitFor(/\r\n([0-9a-f]+)\r\ndata: hello-all\n\n\r\n/);
        assert.equal(parseInt(m[1]!, 16), Buffer.byteLength('data: hello-all\n\n'));
      }
      // The streams go on after the broadcast: a second one arrives too.
      await request(`${s.url}/say?msg=again&ids=${ids.join(',')}`);
      for (const c of clients) await c.waitFor(/data: again\n\n/);
      for (const c of clients) c.destroy();
      if (workers === 0) {
        await eventually('streams closed', async () => (JSON.parse((await request(`${s.url}/clients`)).text) as number[]).length === 0);
      }
    });

    test('more than 128 targets go out in batches (unknown ids are harmless)', async () => {
      const client = new OpenClient(s.m2.port, `/events?id=many-${workers}`);
      const id = Number((await client.waitFor(/data: (\d+)\n\n/))[1]);
      const ids = [id, ...Array.from({ length: 300 }, (_, i) => 900_000 + i)];
      const say = await request(`${s.url}/say?msg=batched&ids=${ids.join(',')}`);
      assert.equal((JSON.parse(say.text) as { sent: number }).sent, 301);
      await client.waitFor(/data: batched\n\n/);
      client.destroy();
      const res = await request(`${s.url}/`);
      assert.equal(res.text, 'ok');
    });
  });
}
