/**
 * Wiring of ./endpoints.ts: listens to the ZeroMQ events of the sockets wsgid connects to mongrel2
 * (zeromq.js `socket.events`, a monitor socket inside libzmq: events arrive only when a connection
 * changes, nothing per message), logs what deserves it, and answers "is everything connected?".
 * Used by the master (dispatch/dispatcher.ts) and by the single-process mode (worker/standalone.ts).
 */
import type { Socket } from 'zeromq';
import type { Logger } from '../log/logger.js';
import { EndpointBook, type EndpointEvent, type EndpointInfo, type EndpointNote, type EndpointRole } from './endpoints.js';

/** How long after start an endpoint may stay unconnected before wsgid warns (log, `wsgid start`). */
export const ENDPOINT_GRACE_MS = 3000;

/** One endpoint as published in status.json and `wsgid status --json` (stable field names). */
export interface EndpointStatus {
  role: EndpointRole;
  server: number;
  address: string;
  state: string;
  /** Seconds in this state. */
  for: number;
  connects: number;
  disconnects: number;
  subscribed?: boolean;
  problem?: string;
}

const WATCHED = [
  'connect:delay',
  'connect:retry',
  'connect',
  'handshake',
  'disconnect',
  'close',
  'handshake:error:protocol',
  'handshake:error:auth',
  'handshake:error:other',
] as const;

export class EndpointMonitor {
  readonly book: EndpointBook;
  private readonly log: Logger;
  private readonly startedAt: number;
  private readonly graceMs: number;
  private waiters: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private graceOver = false;
  /** Shutting down: disconnects are ours, not news. */
  private quiet = false;

  constructor(recv: readonly string[], send: readonly string[], logger: Logger, graceMs = ENDPOINT_GRACE_MS) {
    this.startedAt = Date.now();
    this.book = new EndpointBook(recv, send, this.startedAt);
    this.log = logger;
    this.graceMs = graceMs;
    // One timer at the end of the grace period: warn about late endpoints even when nobody asks.
    this.timer = setTimeout(() => this.endGrace(), graceMs);
    this.timer.unref();
  }

  /** Start watching a socket's events. Call before `connect()`, so its first events are seen. */
  watch(socket: Socket, role: EndpointRole, server: number): void {
    const events = socket.events;
    for (const type of WATCHED) {
      events.on(type, (event) => {
        const error = 'error' in event ? (event.error as { code?: string; message?: string } | undefined) : undefined;
        const fed: EndpointEvent = type.startsWith('handshake:error')
          ? { type: type as 'handshake:error:protocol', code: error?.code, message: error?.message }
          : { type: type as 'connect' };
        this.feed(role, server, fed);
      });
    }
  }

  /** An XPUB saw mongrel2's subscription. */
  subscription(server: number): void {
    this.feed('send', server, { type: 'subscribed' });
  }

  private feed(role: EndpointRole, server: number, event: EndpointEvent): void {
    this.write(this.book.event(role, server, event, Date.now()));
    this.wakeIfSettled();
  }

  private write(notes: EndpointNote[]): void {
    if (this.quiet) return;
    for (const n of notes) this.log[n.level](n.message, n.fields);
  }

  private endGrace(): void {
    this.timer = undefined;
    this.graceOver = true;
    // The timer firing is the decision. It runs on libuv's monotonic clock, and Date.now() (the
    // wall clock, truncated at another phase, slewed by NTP) can still read a millisecond or more
    // short of startedAt + graceMs here: ask the book with at least that, or the warning is lost.
    this.write(this.book.overdue(Math.max(Date.now(), this.startedAt + this.graceMs), this.startedAt, this.graceMs));
    this.wakeIfSettled();
  }

  /**
   * Settled: the grace period is over, or every endpoint is connected or refused (a refusal is
   * final: ZeroMQ does not retry it, so there is nothing to wait for).
   */
  private get isSettled(): boolean {
    return this.graceOver || this.book.endpoints.every((e) => e.state === 'refused' || (e.state === 'connected' && e.subscribed !== false));
  }

  private wakeIfSettled(): void {
    if (!this.isSettled) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /**
   * Resolves with the problems (one sentence each; empty when all is well) once every endpoint is
   * connected, or once the grace period after start is over. `wsgid start` prints them.
   */
  settled(): Promise<string[]> {
    return new Promise((resolve) => {
      const done = (): void => resolve(this.book.problems());
      if (this.isSettled) done();
      else this.waiters.push(done);
    });
  }

  snapshot(now = Date.now()): EndpointStatus[] {
    return this.book.endpoints.map((e) => endpointStatus(e, now));
  }

  /** We disconnect on purpose from now on (shutdown): log nothing more. */
  silence(): void {
    this.quiet = true;
  }

  close(): void {
    this.quiet = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.graceOver = true;
    this.wakeIfSettled();
  }
}

export function endpointStatus(e: EndpointInfo, now: number): EndpointStatus {
  const s: EndpointStatus = {
    role: e.role,
    server: e.server,
    address: e.address,
    state: e.state,
    for: Math.max(0, Math.round((now - e.since) / 1000)),
    connects: e.connects,
    disconnects: e.disconnects,
  };
  if (e.subscribed !== undefined) s.subscribed = e.subscribed;
  if (e.problem !== undefined) s.problem = e.problem;
  return s;
}
