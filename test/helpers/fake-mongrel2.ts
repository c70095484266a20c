/**
 * Test helper: the test plays mongrel2 itself, for what a real mongrel2 never sends: a peer on the
 * handler endpoints (anyone who can reach them) sending forged or malformed messages. It binds the
 * PUSH (requests) and SUB (replies) sockets mongrel2 would; wsgid connects to them as to mongrel2.
 * Frames are built with the test-side encoders (test/unit/protocol-helpers.ts), not src/protocol.
 */
import { Push, Subscriber } from 'zeromq';
import { freePorts } from './mongrel2.js';
import { frame, tnetHeaders, type Headers } from '../unit/protocol-helpers.js';

export interface FakeMongrel2 {
  /** Pass to wsgid: --recv (where it pulls requests) and --send (where it publishes replies). */
  readonly recv: string;
  readonly send: string;
  readonly sender: string;
  /** Send one raw frame. */
  sendRaw(bytes: Buffer): Promise<void>;
  /** Send a request (tnetstring headers; add `connection: close`) and wait until wsgid closes its connection id: what it wrote. */
  request(connId: number, headers: Headers, body?: Buffer | string, timeoutMs?: number): Promise<string>;
  close(): void;
}

export async function startFakeMongrel2(sender = 'evil-peer'): Promise<FakeMongrel2> {
  const [pushPort, subPort] = await freePorts(2);
  const push = new Push();
  const sub = new Subscriber();
  const recv = `tcp://127.0.0.1:${pushPort}`;
  const send = `tcp://127.0.0.1:${subPort}`;
  await push.bind(recv);
  await sub.bind(send);
  sub.subscribe();
  const replies = new Map<number, string>();
  const closedIds = new Set<number>();
  const waiters = new Set<() => void>();
  let closed = false;
  void (async () => {
    try {
      for await (const [msg] of sub) {
        // UUID SP LEN:ids, SP payload
        const text = msg!.toString('latin1');
        const m = /^\S+ (\d+):/.exec(text);
        if (!m) continue;
        const idsStart = m[0].length;
        const ids = text.slice(idsStart, idsStart + Number(m[1])).split(' ').map(Number);
        const payload = text.slice(idsStart + Number(m[1]) + 2);
        for (const id of ids) {
          if (payload === '') closedIds.add(id);
          else replies.set(id, (replies.get(id) ?? '') + payload);
        }
        for (const w of waiters) w();
      }
    } catch {
      /* closed */
    }
  })();
  return {
    recv,
    send,
    sender,
    sendRaw: (bytes) => push.send(bytes),
    async request(connId, headers, body = '', timeoutMs = 20_000) {
      await push.send(frame(sender, connId, String(headers['PATH'] ?? '/'), tnetHeaders(headers), body));
      const deadline = Date.now() + timeoutMs;
      while (!closedIds.has(connId)) {
        if (closed || Date.now() > deadline) throw new Error(`no reply to connection ${connId}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 100);
          waiters.add(() => {
            clearTimeout(t);
            resolve();
          });
        });
        waiters.clear();
      }
      return replies.get(connId) ?? '';
    },
    close() {
      closed = true;
      push.close();
      sub.close();
    },
  };
}
