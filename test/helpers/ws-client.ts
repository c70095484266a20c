/**
 * A `ws` WebSocket client for the tests through mongrel2 (websocket.test.ts, asgi.test.ts): received
 * messages queue up and are taken in order; every wait is bounded, so a hang fails the test instead
 * of stalling it (nothing is timed).
 */
import assert from 'node:assert/strict';
import WebSocket from 'ws';

export interface Received {
  data: Buffer;
  isBinary: boolean;
}

/** `promise`, or a rejection naming `what` after `ms`. */
export function within<T>(promise: Promise<T>, what: string, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms))),
  ]);
}

export class WsClient {
  readonly ws: WebSocket;
  private readonly queue: Received[] = [];
  private waiter: (() => void) | undefined;
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  /** The status of a refused handshake. */
  readonly refused: Promise<number>;

  constructor(
    url: string,
    protocols?: string[],
    /** The bound on each wait: opening, and each next message. */
    private readonly stepMs = 15_000,
  ) {
    this.ws = new WebSocket(url, protocols);
    this.ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.queue.push({ data, isBinary });
      this.waiter?.();
    });
    let refuse!: (status: number) => void;
    this.refused = new Promise((resolve) => (refuse = resolve));
    this.opened = within(
      new Promise<void>((resolve, reject) => {
        this.ws.once('open', () => resolve());
        this.ws.once('error', reject);
        this.ws.once('unexpected-response', (_req, res) => {
          refuse(res.statusCode ?? 0);
          reject(new Error(`unexpected response ${res.statusCode}`));
        });
      }),
      'open',
      stepMs,
    );
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() }));
    });
    this.ws.on('error', () => {});
  }

  async next(): Promise<Received> {
    const deadline = Date.now() + this.stepMs;
    while (this.queue.length === 0) {
      if (Date.now() > deadline) throw new Error(`no WebSocket message within ${this.stepMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 100);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    return this.queue.shift()!;
  }

  async text(): Promise<string> {
    const m = await this.next();
    assert.equal(m.isBinary, false, 'expected a text message');
    return m.data.toString('utf8');
  }

  async roundTrip(text: string): Promise<string> {
    this.ws.send(text);
    return this.text();
  }
}
