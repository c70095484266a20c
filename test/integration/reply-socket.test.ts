/**
 * ReplySocket.whenHandedOver: a worker reports a request done only once its reply has left the
 * worker's own queue (the master takes 'D' for "sent" when the worker dies later). A real ZeroMQ
 * subscriber plays mongrel2: replies wait in the queue until it has subscribed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Subscriber } from 'zeromq';
import { ReplySocket } from '../../src/transport/reply-socket.js';
import { freePort } from '../helpers/mongrel2.js';

test('whenHandedOver waits while a reply is still queued in the worker, and fires once it left', async () => {
  const endpoint = `tcp://127.0.0.1:${await freePort()}`;
  const socket = new ReplySocket(endpoint);
  const order: string[] = [];
  try {
    socket.send(Buffer.from('x 1:1, reply-1'));
    socket.whenHandedOver(() => order.push('done-1'));
    socket.send(Buffer.from('x 1:2, reply-2'));
    socket.whenHandedOver(() => order.push('done-2'));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(order.length, 0, 'nobody subscribed: the replies are still ours');
    const sub = new Subscriber();
    sub.subscribe();
    await sub.bind(endpoint);
    try {
      const [first] = await sub.receive();
      assert.equal(first?.toString(), 'x 1:1, reply-1');
      const deadline = Date.now() + 20_000;
      while (order.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(order.join(), 'done-1,done-2');
      // Nothing queued: at once.
      socket.whenHandedOver(() => order.push('done-now'));
      assert.equal(order.at(-1), 'done-now');
    } finally {
      sub.close();
    }
  } finally {
    await socket.close();
  }
});

test('a subscriber that stops reading past the high-water mark: every reply still arrives, whole and in order', async () => {
  // Replies sent one at a time (one message each) until the pipe to the subscriber is full (noDrop:
  // the send waits for room instead of failing or dropping); then the subscriber reads them all.
  const endpoint = `tcp://127.0.0.1:${await freePort()}`;
  const sub = new Subscriber({ receiveHighWaterMark: 100 });
  sub.subscribe();
  await sub.bind(endpoint);
  const socket = new ReplySocket(endpoint);
  const total = 80_000;
  const body = 'y'.repeat(500);
  let handed = 0;
  try {
    const deadline = Date.now() + 20_000;
    while (!socket.ready && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const sending = (async () => {
      for (let i = 0; i < total; i++) {
        socket.send(Buffer.from(`x 1:1, ${i} ${body}`));
        await new Promise<void>((r) => socket.whenHandedOver(r));
        handed++;
      }
    })();
    // Nobody reads: wait until the sends stall (the pipe and the kernel buffers are full).
    let last = -1;
    while (handed !== last && handed < total) {
      last = handed;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.ok(handed < total, `the full pipe pushed back (${handed} of ${total} handed over)`);
    let next = 0;
    while (next < total) {
      const parts = await sub.receive();
      for (const part of parts) {
        assert.equal(part.toString(), `x 1:1, ${next} ${body}`);
        next++;
      }
    }
    await sending;
    assert.equal(socket.pendingBytes, 0);
  } finally {
    await socket.close();
    sub.close();
  }
});
