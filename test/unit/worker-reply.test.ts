/**
 * worker/reply.ts, what goes on the wire: every reply frame read back with a strict reader of
 * mongrel2's reply format (test/helpers/reply-frames.ts): the bytes a gateway wrote, in order,
 * nothing lost or added, a close frame exactly when the connection must close, nothing after it;
 * --uncredited-limit, abort, a client gone, keep-alive pings, back-pressure from ZeroMQ and from
 * download credits.
 *
 * Coalescing: after its first messages a response still sends a write that follows a pause on
 * the next tick (an SSE event is not held back), and between writes close together it sends at
 * most one message per IDLE_FLUSH_MS (mongrel2 drops a client with 16 messages queued).
 *
 * Generated cases are seeded: UNIT_SEED=<n> replays (fast-check prints the seed of a failure).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { ConnectionReply, flushDelay, type ReplyHooks } from '../../src/worker/reply.js';
import { ConnectionFlow, FLOW_HIGH_WATER } from '../../src/worker/credit-queue.js';
import type { ReplySocket } from '../../src/transport/reply-socket.js';
import { RecordingSocket } from '../helpers/reply-frames.js';
import { tnet } from './protocol-helpers.js';

const SEED = Number(process.env.UNIT_SEED ?? 2211);
const SENDER = '54c6755b-9628-40a4-9a2d-cc82a816345e';
const CONN = 7;
const HEAD = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n';

function replyOn(socket: RecordingSocket, options: { keepAlive?: boolean; hooks?: Partial<ReplyHooks>; flow?: ConnectionFlow; httpVersion?: string } = {}): ConnectionReply {
  const hooks: ReplyHooks = { onStart: () => {}, ...options.hooks };
  return new ConnectionReply(socket.asReplySocket, 0, SENDER, CONN, 'GET', options.httpVersion ?? 'HTTP/1.1', options.keepAlive ?? true, hooks, options.flow);
}

const bytesOf = (chunk: string | Uint8Array): Buffer => (typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : Buffer.from(chunk));

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

describe('reply frames on the wire', () => {
  test('generated writes: every frame is SENDER 1:7, BODY; the bodies are the bytes written, in order; a close frame last exactly when the connection closes', async () => {
    const chunk = fc.oneof(
      fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), maxLength: 300 }),
      fc.uint8Array({ maxLength: 70_000 }),
      fc.constant(''),
    );
    const step = fc.record({ chunk, pause: fc.constantFrom('none', 'none', 'tick') });
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 12 }), fc.boolean(), fc.boolean(), fc.option(chunk), async (steps, keepAlive, close, last) => {
        const socket = new RecordingSocket();
        let started = 0;
        const reply = replyOn(socket, { keepAlive, hooks: { onStart: () => void started++ } });
        const written: Buffer[] = [bytesOf(HEAD)];
        reply.write(HEAD);
        for (const { chunk: c, pause } of steps) {
          written.push(bytesOf(c));
          reply.write(c);
          if (pause === 'tick') await tick();
        }
        if (last !== null) written.push(bytesOf(last));
        reply.end(last ?? undefined, close);
        const expected = Buffer.concat(written);
        for (const frame of socket.frames) {
          assert.equal(frame.sender, SENDER);
          assert.deepEqual(frame.ids, [String(CONN)]);
        }
        assert.ok(socket.data().equals(expected), 'the bodies joined are the bytes written');
        const closes = keepAlive && !close ? [] : [socket.frames.length - 1];
        assert.deepEqual(socket.closes(), closes, 'one close frame, last, iff the connection closes');
        assert.equal(started, 1, 'onStart once, with the first message');
        assert.equal(reply.status, 200);
        assert.equal(reply.bytes, expected.length);
        assert.equal(reply.bodyBytes, expected.length - Buffer.byteLength(HEAD));
        // Nothing more goes out after end(), whatever the app still does.
        const before = socket.frames.length;
        reply.write('late');
        reply.end('later');
        reply.ping();
        await tick();
        assert.equal(socket.frames.length, before);
      }),
      { seed: SEED, numRuns: 60 },
    );
  });

  test('a head split across writes: bodyBytes counts from the blank line, wherever the writes cut it', async () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: HEAD.length - 1 }), fc.uint8Array({ maxLength: 100 }), (cut, body) => {
        const socket = new RecordingSocket();
        const reply = replyOn(socket);
        reply.write(HEAD.slice(0, cut));
        reply.write(HEAD.slice(cut));
        reply.end(body);
        assert.equal(reply.bodyBytes, body.length);
        assert.ok(socket.data().equals(Buffer.concat([Buffer.from(HEAD, 'latin1'), body])));
      }),
      { seed: SEED },
    );
  });

  test('--uncredited-limit: what was written before the write that passes it is sent, then a close frame; the rest is dropped', async () => {
    const socket = new RecordingSocket();
    let cuts = 0;
    const reply = replyOn(socket, { hooks: { uncreditedLimit: 1000, onCut: () => void cuts++ } });
    reply.write(HEAD);
    await tick(); // the head went out on its own
    const sent = [bytesOf(HEAD)];
    for (let k = 0; k < 10; k++) {
      const chunk = Buffer.alloc(300, 0x61 + k);
      if (reply.bytes + chunk.length <= 1000) sent.push(chunk);
      reply.write(chunk);
    }
    reply.end('tail');
    assert.equal(cuts, 1);
    assert.ok(socket.data().equals(Buffer.concat(sent)), 'exactly the bytes before the limit');
    assert.ok(Buffer.concat(sent).length <= 1000);
    assert.deepEqual(socket.closes(), [socket.frames.length - 1]);
  });

  test('abort drops what is pending and sends only a close frame; after end() it does nothing', async () => {
    const socket = new RecordingSocket();
    const reply = replyOn(socket);
    reply.write(HEAD);
    await tick();
    reply.write('pending, never sent');
    reply.abort();
    await tick();
    assert.equal(socket.frames.length, 2);
    assert.equal(socket.frames[0]!.body.toString('latin1'), HEAD);
    assert.deepEqual(socket.closes(), [1]);

    const ended = new RecordingSocket();
    const done = replyOn(ended);
    done.end(HEAD);
    done.abort();
    assert.equal(ended.frames.length, 1, 'no close frame for a keep-alive response that ended');
  });

  test('the client gone: nothing more is sent, not even a close frame', async () => {
    const socket = new RecordingSocket();
    const reply = replyOn(socket, { keepAlive: false });
    reply.write(HEAD);
    reply.clientGone();
    reply.write('more');
    reply.end('end', true);
    await tick();
    assert.equal(socket.frames.length, 0);
  });

  test('ping is the ctl keep-alive reply (SENDER 3:X 7, ["ctl", {"keep-alive": true}] as a tnetstring)', () => {
    const socket = new RecordingSocket();
    const reply = replyOn(socket);
    reply.ping();
    assert.equal(socket.frames.length, 1);
    assert.deepEqual(socket.frames[0]!.ids, ['X', String(CONN)]);
    const expected = tnet(Buffer.concat([tnet('ctl', ','), tnet(Buffer.concat([tnet('keep-alive', ','), tnet('true', '!')]), '}')]), ']');
    assert.equal(socket.frames[0]!.body.toString('latin1'), expected.toString('latin1'));
  });

  test('ZeroMQ behind (8 MiB queued): write() says wait, drained() resolves once the socket flushed', async () => {
    const socket = new RecordingSocket();
    const reply = replyOn(socket);
    socket.pendingBytes = 8 * 1024 * 1024;
    assert.equal(reply.write(HEAD), false);
    let drained = false;
    const waiting = reply.drained().then(() => (drained = true));
    await tick();
    assert.equal(drained, false);
    socket.drain();
    await waiting;
    assert.equal(reply.write('x'), true);
    reply.end();
  });
});

describe('reply frames with download credits (worker/credit-queue.ts)', () => {
  test('no more unacknowledged bytes than the credit; write() says wait past the high-water mark; the close frame after the last byte', async () => {
    const socket = new RecordingSocket();
    const flow = new ConnectionFlow(socket.asReplySocket, SENDER, CONN, 1000);
    const reply = replyOn(socket, { flow, keepAlive: false });
    const body = Buffer.alloc(FLOW_HIGH_WATER + 10_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    assert.equal(reply.write(HEAD), true);
    assert.equal(reply.write(body), false, 'past the high-water mark');
    let drained = false;
    const waiting = reply.drained().then(() => (drained = true));
    reply.end();
    let granted = 1000;
    const sent = (): number => socket.data().length;
    assert.ok(sent() <= granted);
    assert.deepEqual(socket.closes(), [], 'no close while bytes wait for credit');
    while (sent() < Buffer.byteLength(HEAD) + body.length) {
      const before = sent();
      flow.grant(40_000); // mongrel2 wrote 40 000 bytes to the client
      granted += 40_000;
      assert.ok(sent() <= granted, `${sent()} bytes sent on ${granted} of credit`);
      assert.ok(sent() > before, 'credit given, bytes sent');
      await tick();
    }
    await waiting;
    assert.equal(drained, true);
    assert.ok(socket.data().equals(Buffer.concat([Buffer.from(HEAD, 'latin1'), body])));
    assert.deepEqual(socket.closes(), [socket.frames.length - 1]);
  });
});
