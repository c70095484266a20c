/**
 * What a handler PUBs to mongrel2, read back by the test: a reply socket double that records
 * frames, and a strict reader of the reply format written from the protocol notes
 * (docs/MONGREL2.md §3, mongrel2's handler docs), not from src/protocol/encode.ts:
 *
 *     UUID SP LEN:IDS, SP BODY          IDS = connection ids separated by spaces ("X id" for ctl)
 *
 * An empty BODY asks mongrel2 to close the connections.
 */
import assert from 'node:assert/strict';
import type { ReplySocket } from '../../src/transport/reply-socket.js';

export interface ReplyFrame {
  sender: string;
  /** The ids netstring's payload split on spaces ("X" stays in for extended replies). */
  ids: string[];
  body: Buffer;
}

export function readReplyFrame(frame: Buffer): ReplyFrame {
  const space = frame.indexOf(0x20);
  assert.ok(space > 0, `no sender in ${JSON.stringify(frame.toString('latin1', 0, 80))}`);
  const sender = frame.toString('latin1', 0, space);
  assert.match(sender, /^[A-Za-z0-9-]+$/, 'sender');
  const colon = frame.indexOf(0x3a, space + 1);
  const digits = frame.toString('latin1', space + 1, colon);
  assert.match(digits, /^(0|[1-9]\d*)$/, `ids netstring length ${JSON.stringify(digits)}`);
  const start = colon + 1;
  const end = start + Number(digits);
  assert.equal(frame[end], 0x2c, 'ids netstring ends with a comma');
  assert.equal(frame[end + 1], 0x20, 'a space after the ids netstring');
  const ids = frame.toString('latin1', start, end).split(' ');
  for (const id of ids) assert.match(id, /^(X|0|[1-9]\d*)$/, `connection id ${JSON.stringify(id)}`);
  return { sender, ids, body: frame.subarray(end + 2) };
}

/** A ReplySocket that records each frame it is given; `pendingBytes` is what the test sets. */
export class RecordingSocket {
  readonly frames: ReplyFrame[] = [];
  pendingBytes = 0;
  private flushWaiters: Array<() => void> = [];

  send(frame: Buffer): void {
    this.frames.push(readReplyFrame(Buffer.from(frame)));
  }

  flushed(): Promise<void> {
    if (this.pendingBytes === 0) return Promise.resolve();
    return new Promise((resolve) => this.flushWaiters.push(resolve));
  }

  /** ZeroMQ took everything: resolve flushed(). */
  drain(): void {
    this.pendingBytes = 0;
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    for (const resolve of waiters) resolve();
  }

  get asReplySocket(): ReplySocket {
    return this as unknown as ReplySocket;
  }

  /** Data frames' bodies joined (empty close frames and ctl frames left out). */
  data(): Buffer {
    return Buffer.concat(this.frames.filter((f) => f.ids[0] !== 'X').map((f) => f.body));
  }

  /** Indexes of close frames (empty body, not ctl). */
  closes(): number[] {
    return this.frames.flatMap((f, i) => (f.ids[0] !== 'X' && f.body.length === 0 ? [i] : []));
  }
}
