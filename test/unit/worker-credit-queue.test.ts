/**
 * worker/credit-queue.ts, download credits (mongrel2 `download.flow_control=1`): generated sequences of
 * response bytes, credit grants and a close, each frame read back with the strict reply reader
 * (test/helpers/reply-frames.ts). What must hold at every step: never more bytes out than the
 * initial credit plus what mongrel2 acknowledged (it drops a client past that), the bytes in the
 * order written, the close frame only after the last byte, writers asked to wait exactly while
 * FLOW_HIGH_WATER bytes are queued, and nothing at all once the client is gone.
 *
 * UNIT_SEED=<n> replays (fast-check prints the seed of a failure).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ConnectionFlow, FLOW_HIGH_WATER } from '../../src/worker/credit-queue.js';
import { RecordingSocket } from '../helpers/reply-frames.js';

const SEED = Number(process.env.UNIT_SEED ?? 2212);
const SENDER = 'flow-sender';
const CONN = 42;

type Op = { send: number } | { grant: number } | { gone: true };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.integer({ min: 0, max: 300_000 }).map((send) => ({ send })) },
  { weight: 5, arbitrary: fc.integer({ min: -5, max: 200_000 }).map((grant) => ({ grant })) },
  { weight: 1, arbitrary: fc.constant({ gone: true as const }) },
);

describe('download credits on the wire', () => {
  test('generated sends and grants: within the credit, in order, the close frame last, writers woken', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 200_000 }), fc.array(op, { maxLength: 25 }), async (initial, ops) => {
        const socket = new RecordingSocket();
        const flow = new ConnectionFlow(socket.asReplySocket, SENDER, CONN, initial);
        const written: Buffer[] = [];
        let credit = initial;
        let gone = false;
        let counter = 0;
        const check = (): void => {
          for (const frame of socket.frames) {
            assert.equal(frame.sender, SENDER);
            assert.deepEqual(frame.ids, [String(CONN)]);
          }
          const data = socket.data();
          assert.ok(data.length <= credit, `${data.length} bytes out on ${credit} of credit`);
          assert.ok(Buffer.concat(written).subarray(0, data.length).equals(data), 'the bytes in the order written');
          assert.equal(flow.full, flow.queued >= FLOW_HIGH_WATER);
          if (!gone) assert.equal(flow.queued, Buffer.concat(written).length - data.length, 'queued = written - sent');
        };
        for (const o of ops) {
          const framesBefore = socket.frames.length;
          if ('send' in o) {
            const payload = Buffer.alloc(o.send);
            for (let i = 0; i < payload.length; i++) payload[i] = counter++ & 0xff;
            if (!gone) written.push(payload);
            flow.send(payload);
          } else if ('grant' in o) {
            if (!gone && o.grant > 0) credit += o.grant;
            flow.grant(o.grant);
          } else {
            gone = true;
            flow.gone();
          }
          if (gone) assert.equal(socket.frames.length, framesBefore, 'nothing after the client left');
          check();
          const waiting = flow.drained();
          let woken = false;
          void waiting.then(() => (woken = true));
          await Promise.resolve();
          assert.equal(woken, !flow.full || gone, 'drained() resolves at once unless full');
        }
        // The response ends: a close behind the bytes, then credit until all is out.
        flow.close();
        let sentAll = false;
        flow.whenSent(() => (sentAll = true));
        const total = Buffer.concat(written).length;
        for (let i = 0; !gone && socket.data().length < total; i++) {
          assert.ok(i < 1000, 'credit given, bytes sent');
          assert.deepEqual(socket.closes(), [], 'no close frame while bytes wait for credit');
          assert.equal(sentAll, false);
          credit += 65_536;
          flow.grant(65_536);
          check();
        }
        assert.equal(sentAll, true, 'whenSent once everything went out (or the client left)');
        if (gone) {
          assert.deepEqual(socket.closes(), [], 'no close frame for a client that left');
        } else {
          assert.ok(socket.data().equals(Buffer.concat(written)));
          assert.deepEqual(socket.closes(), [socket.frames.length - 1], 'one close frame, after the last byte');
        }
        for (const frame of socket.frames.slice(0, -1)) assert.ok(frame.body.length > 0, 'no empty frame but the close');
      }),
      { seed: SEED, numRuns: 150 },
    );
  });

  test('drained() waiters wake when credit brings the queue under the high-water mark, and when the client leaves', async () => {
    const socket = new RecordingSocket();
    const flow = new ConnectionFlow(socket.asReplySocket, SENDER, CONN, 0);
    flow.send(Buffer.alloc(FLOW_HIGH_WATER + 1));
    assert.equal(flow.full, true);
    let woken = 0;
    void flow.drained().then(() => woken++);
    flow.grant(1);
    await Promise.resolve();
    assert.equal(woken, 0, 'still FLOW_HIGH_WATER queued');
    flow.grant(20_000);
    await Promise.resolve();
    assert.equal(woken, 1);
    assert.equal(socket.data().length, 20_001);

    const left = new ConnectionFlow(socket.asReplySocket, SENDER, CONN, 0);
    left.send(Buffer.alloc(FLOW_HIGH_WATER));
    const waiting = left.drained();
    left.gone();
    await waiting; // resolves: the writer must not hang on a client that left
  });
});
