/**
 * worker/reply.ts coalescing: after its first messages a response still sends a write that follows
 * a pause on the next tick (an SSE event is not held back), and between writes close together it
 * sends at most one message per IDLE_FLUSH_MS (mongrel2 drops a client with 16 messages queued).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionReply, flushDelay } from '../../src/worker/reply.js';
import type { ReplySocket } from '../../src/transport/reply-socket.js';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('reply coalescing', () => {
  test('flushDelay: the first four messages and credited connections at once; later ones at most every 25 ms', () => {
    assert.equal(flushDelay(0, false, 0), 0);
    assert.equal(flushDelay(3, false, 0), 0);
    assert.equal(flushDelay(9, true, 0), 0);
    assert.equal(flushDelay(4, false, 5), 20);
    assert.equal(flushDelay(12, false, 25), 0);
    assert.equal(flushDelay(12, false, 1000), 0);
  });

  test('a write after a pause goes out on the next tick, also past the first four messages', async () => {
    const frames: Buffer[] = [];
    // The socket only records what it is given: this checks when ConnectionReply hands a message over.
    const socket = { send: (frame: Buffer) => void frames.push(frame), pendingBytes: 0 } as unknown as ReplySocket;
    const reply = new ConnectionReply(socket, 0, 'uuid', 1, 'GET', 'HTTP/1.1', true, { onStart: () => {} });
    reply.write('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n');
    for (let k = 0; k < 6; k++) {
      if (k > 0) await sleep(40); // the app pauses between events (longer on a busy machine, still a pause)
      reply.write(`data: ${k}\n\n`);
      await tick();
      assert.equal(frames.length, k + 1, `event ${k} was sent on the next tick`);
      assert.match(frames[k]!.toString('latin1'), new RegExp(`data: ${k}\\n\\n$`));
    }
    reply.end();
  });
});
