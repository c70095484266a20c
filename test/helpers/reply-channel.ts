/**
 * The one ReplyChannel test double (src/http/reply-channel.ts): records what a gateway writes and
 * how it ends the response, can simulate back-pressure and a client that left, and checks the
 * contract as it goes: no write after end() or abort(), end() at most once, no end() after abort().
 * A breach fails the test at once (an AssertionError thrown from the gateway's call) and is kept
 * in `violations` too, for gateways that catch errors.
 *
 * As the real channel (worker/reply.ts): writes after the client left (`clientGone()`, or
 * `closed = true`) are accepted and dropped, and abort() after end() does nothing.
 */
import assert from 'node:assert/strict';
import type { ReplyChannel } from '../../src/http/reply-channel.js';
import { parseResponse, type ParsedResponse } from './http.js';

export interface TestReplyOptions {
  method?: string;
  httpVersion?: string;
  keepAlive?: boolean;
  /**
   * Simulated back-pressure: 'none' (write() → true), 'timer' (write() → false, drained() after
   * 1 ms: a channel always behind), 'manual' (write() → false, drained() waits for release()).
   */
  backPressure?: 'none' | 'timer' | 'manual';
  /** Record only the first n chunks (bytes are still counted): for long streams. */
  keepChunks?: number;
}

export class TestReply implements ReplyChannel {
  readonly method: string;
  readonly httpVersion: string;
  readonly keepAlive: boolean;
  readonly chunks: Buffer[] = [];
  /** Bytes accepted, head included (dropped writes after the client left not counted). */
  bytes = 0;
  /** write() calls that recorded bytes. */
  writes = 0;
  /** write() calls answered false (back-pressure). */
  writesRefused = 0;
  /** Most writes made while the channel said "wait", between two releases ('manual'). */
  maxOutstandingWhileWaiting = 0;
  ended = false;
  aborted = false;
  /** The client is gone or the reply was aborted; writes are dropped. Tests may set it. */
  closed = false;
  /** end()'s `close` argument (true/false), undefined until end() (also after an abort). */
  closeRequested: boolean | undefined;
  /** The connection is closed after this response: close requested, not keep-alive, or aborted. */
  closeAfter = false;
  /** Contract breaches seen (each also failed an assertion when it happened). */
  readonly violations: string[] = [];
  private backPressure: 'none' | 'timer' | 'manual';
  private readonly keepChunks: number;
  private outstandingWhileWaiting = 0;
  private drainWaiters: Array<() => void> = [];
  private endWaiters: Array<() => void> = [];

  constructor(options: TestReplyOptions = {}) {
    this.method = options.method ?? 'GET';
    this.httpVersion = options.httpVersion ?? 'HTTP/1.1';
    this.keepAlive = options.keepAlive ?? true;
    this.backPressure = options.backPressure ?? 'none';
    this.keepChunks = options.keepChunks ?? Infinity;
  }

  write(chunk: Uint8Array | string): boolean {
    this.check(!this.ended, this.aborted ? 'write after abort' : 'write after end');
    if (this.closed) return true;
    // Strings are byte strings (latin1), as the contract says.
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : Buffer.from(chunk);
    this.writes++;
    this.bytes += bytes.length;
    if (this.chunks.length < this.keepChunks) this.chunks.push(bytes);
    if (this.backPressure === 'none') return true;
    this.writesRefused++;
    this.outstandingWhileWaiting++;
    this.maxOutstandingWhileWaiting = Math.max(this.maxOutstandingWhileWaiting, this.outstandingWhileWaiting);
    return false;
  }

  drained(): Promise<void> {
    if (this.closed || this.backPressure === 'none') return Promise.resolve();
    if (this.backPressure === 'timer') return new Promise((resolve) => setTimeout(resolve, 1));
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** 'manual' back-pressure: the channel caught up; wake whoever waits in drained(). */
  release(): void {
    this.outstandingWhileWaiting = 0;
    this.wakeDrainWaiters();
  }

  /** Stop (or start) simulating back-pressure; stopping wakes drained() waiters. */
  setBackPressure(mode: 'none' | 'timer' | 'manual'): void {
    this.backPressure = mode;
    if (mode === 'none') this.release();
  }

  end(chunk?: Uint8Array | string, close?: boolean): void {
    this.check(!this.aborted, 'end after abort');
    this.check(!this.ended, 'end called twice');
    if (chunk !== undefined) this.write(chunk);
    this.ended = true;
    this.closeRequested = close === true;
    this.closeAfter = close === true || !this.keepAlive;
    this.wakeEndWaiters();
  }

  abort(): void {
    if (this.ended) return; // as the real channel: nothing left to abort
    this.ended = true;
    this.aborted = true;
    this.closed = true;
    this.closeAfter = true;
    this.wakeDrainWaiters();
    this.wakeEndWaiters();
  }

  /** The client disconnected (the worker marks the channel closed): writes are dropped from now on. */
  clientGone(): void {
    this.closed = true;
    this.wakeDrainWaiters();
  }

  /** Resolves once the response was ended or aborted. */
  whenEnded(): Promise<void> {
    return this.ended ? Promise.resolve() : new Promise((resolve) => this.endWaiters.push(resolve));
  }

  /** Everything recorded, as one buffer. */
  data(): Buffer {
    return Buffer.concat(this.chunks);
  }

  text(): string {
    return this.data().toString('latin1');
  }

  /** The recorded bytes as one complete HTTP response (read to the end: the connection closed). */
  parsed(): ParsedResponse {
    const result = parseResponse(this.data(), { method: this.method, eof: true });
    assert.ok(result, 'a complete response');
    return result.response;
  }

  private check(ok: boolean, breach: string): void {
    if (ok) return;
    this.violations.push(breach);
    assert.fail(`ReplyChannel contract: ${breach}`);
  }

  private wakeDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private wakeEndWaiters(): void {
    const waiters = this.endWaiters;
    this.endWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
