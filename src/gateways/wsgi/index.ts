/**
 * The WSGI gateway: serves a Python WSGI app (PEP 3333) through one Python child process per
 * worker, running wsgi_bridge.py and talking the pipe protocol of ../python/pipe.ts over fds 3 and 4.
 *
 * Concurrency: `threads` (--threads) requests at a time per Python process (1 by default, like
 * the original wsgid's workers; more is gunicorn's gthread: a thread pool in wsgi_bridge.py). Other
 * requests wait in this gateway's FIFO queue; the gateway's `capacity` tells the master not to
 * send new connections here while another worker could start them.
 * Pipelining: up to --wsgi-pipeline − 1 requests beyond those running are in flight to Python
 * (environ and small inline body sent ahead), so that it goes from one request to the next without
 * a round trip; it starts them in order. Uploads (bodyFile) and large bodies are sent only when a
 * thread is free for them.
 *
 * Failures:
 * - the app raises → bridge reports it, we answer 500 (or, if the head is out, end the response
 *   with a close so the client sees it truncated) and log the traceback; Python goes on;
 * - the Python process dies → the current request gets 502 (or a close if its head is out) and the
 *   gateway starts a new Python process before the next request (quick crash loops back off
 *   exponentially, up to 10 s; a restart that fails to load answers queued requests 502);
 * - a hang is the master's business (its request timeout replaces the worker; wsgi_bridge.py dies with
 *   the worker through PR_SET_PDEATHSIG).
 *
 * Parts: ./python-process.ts (the child and its pipes), ./job.ts (a request's states and their
 * transitions), ./scheduling.ts (pipelining, retry after a crash, restart backoff: the rules),
 * ./response.ts (HTTP translation: head, body framing, ends, errors). This module wires them:
 * the queue, the requests in flight, and the frames from Python.
 */
import { stat } from 'node:fs/promises';
import type { Gateway, GatewayCapacity, GatewayFactory, GatewayOptions, GatewayRequest, LoadedApp } from '../types.js';
import type { ReplyChannel } from '../../http/reply-channel.js';
import type { Logger } from '../../log/logger.js';
import { buildEnviron } from './environ.js';
import { decodeWhole, DONE_ERROR, DONE_OK, encodeAck, encodeEnviron, T, type Frame } from '../python/pipe.js';
import { isPythonSpec, type PythonSpec } from '../python/spec.js';
import { Job } from './job.js';
import { launchBridge, type PythonProcess } from '../python/bridge-process.js';
import { errorAnswer, frameBody, responseEnd, translateHead } from '../python/response.js';
import { afterCrash, maySend, PIPELINE } from './scheduling.js';
import { BridgeSupervisor } from '../python/supervisor.js';

import { PythonAppError } from '../python/errors.js';

/** Bytes of response body wsgi_bridge.py may send ahead of our acknowledgements. */
const WINDOW = 1024 * 1024;

type LogLevelName = 'debug' | 'info' | 'warn' | 'error';
const LEVELS: readonly LogLevelName[] = ['debug', 'info', 'warn', 'error'];

class WsgiGateway implements Gateway {
  /** The Python process, its restarts and stop. */
  private readonly bridges: BridgeSupervisor;
  /** Requests sent (or being sent) to Python, in order; the first is the one Python runs. */
  private readonly inflight: Job[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private readonly logger: Logger;
  private readonly version: string;
  /** --wsgi-pipeline: beyond what runs, depth − 1 requests are sent ahead. */
  private readonly pipelineDepth: number;
  /** Requests the Python process runs at once (--threads). */
  private readonly threads: number;
  readonly capacity: GatewayCapacity;

  constructor(
    private readonly spec: PythonSpec,
    options: GatewayOptions,
  ) {
    this.logger = options.logger;
    this.version = options.version;
    this.pipelineDepth = options.settings?.wsgiPipeline ?? PIPELINE;
    this.threads = options.settings?.threads ?? 1;
    this.capacity = { concurrent: this.threads, waiting: this.pipelineDepth - 1 };
    this.bridges = new BridgeSupervisor('WSGI', this.logger, {
      start: () => this.start(),
      restartFailed: () => {
        for (const job of this.queue.splice(0)) this.finishWithError(job, 502);
      },
      restarted: () => this.pump(),
    });
  }

  private get proc(): PythonProcess | undefined {
    return this.bridges.proc;
  }

  private get closing(): boolean {
    return this.bridges.closing;
  }

  /** Start Python and load the app; rejects with the Python traceback when it cannot. */
  start(): Promise<PythonProcess> {
    return launchBridge(this.spec, this.logger, {
      kind: 'WSGI',
      config: {
        window: WINDOW,
        threads: this.threads,
      },
      events: {
        frame: (p, frame) => this.onFrame(p, frame),
        batchEnd: (p) => this.flushAcks(p),
        exit: (p, description, complete) => this.onExit(p, description, complete),
      },
    });
  }

  setProcess(proc: PythonProcess): void {
    this.bridges.proc = proc;
  }

  handle(request: GatewayRequest, reply: ReplyChannel): Promise<void> {
    return new Promise<void>((resolve) => {
      const job: Job = new Job(this.nextId, request, reply, resolve, () => this.abort(job));
      this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
      // request.onAbort when the worker offers it: no AbortController per request.
      const listening = request.onAbort ? request.onAbort(job.onAbort) : !request.signal.aborted;
      if (!listening || this.closing) {
        if (this.closing && listening) this.sendError(job, 503);
        this.endOnce(job, true);
        resolve();
        return;
      }
      if (!request.onAbort) request.signal.addEventListener('abort', job.onAbort, { once: true });
      this.queue.push(job);
      this.pump();
    });
  }

  async close(): Promise<void> {
    this.bridges.closing = true;
    for (const job of this.queue.splice(0)) this.finishWithError(job, 503);
    // The bridge serves the requests it was sent, then exits: their frames are still handled.
    await this.bridges.stop(this.inflight.length > 0 ? 5000 : 2000);
    // Python did not finish them (it was killed): answer what can still be answered.
    for (const job of this.inflight.splice(0)) {
      if (job.state === 'cancelled') continue;
      this.finishWithError(job, 503);
    }
  }

  // -- scheduling (rules in ./scheduling.ts) --------------------------------------------------

  private pump(): void {
    while (this.queue.length > 0 && !this.closing) {
      const proc = this.proc;
      if (!proc || proc.exited) {
        if (this.inflight.length === 0) this.bridges.restart();
        return;
      }
      const next = this.queue[0]!;
      if (!maySend(next.request, this.inflight.map((job) => job.state), this.pipelineDepth, this.threads)) return;
      this.queue.shift();
      next.apply('take');
      this.inflight.push(next);
      void this.run(next, proc);
    }
  }

  private isInflight(job: Job): boolean {
    return this.inflight.includes(job);
  }

  /** Hand a request taken in flight to Python (an upload is measured first). */
  private async run(job: Job, proc: PythonProcess): Promise<void> {
    const { message, bodyFile } = job.request;
    let bodyLength = message.body.length;
    if (bodyFile !== undefined) {
      try {
        bodyLength = (await stat(bodyFile)).size;
      } catch (err) {
        this.logger.error('cannot read the upload file', { file: bodyFile, error: (err as Error).message });
        if (this.isInflight(job)) this.finishWithError(job, 500);
        return;
      }
      if (!this.isInflight(job)) return;
      if (job.aborted || proc.exited) {
        this.finish(job, () => this.endOnce(job, true));
        if (proc.exited) this.pump();
        return;
      }
    }
    const environ = buildEnviron(message, bodyLength, { serverName: this.spec.serverName });
    if (bodyFile !== undefined) environ.push(['wsgid.body_file', Buffer.from(bodyFile, 'utf8').toString('latin1')]);
    job.apply('send');
    proc.sendRequest(job.id, encodeEnviron(environ), bodyFile === undefined ? message.body : undefined);
    if (bodyFile !== undefined) this.pump(); // the requests behind it may go now
  }

  /** The client left (the request's signal aborted). */
  private abort(job: Job): void {
    job.aborted = true;
    const queued = this.queue.indexOf(job);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      job.apply('cancel');
      job.reply.abort();
      job.resolve();
      return;
    }
    const at = this.inflight.indexOf(job);
    if (at < 0 || job.state === 'preparing') return; // an upload being prepared: run() sees the abort
    this.proc?.send(T.cancel, job.id);
    // Sent ahead, not started as far as we know (Python starts them in order, `threads` at a
    // time): answer now; Python skips it (or, if it had started, stops at the next chunk) and its
    // frames are ignored.
    if (at >= this.threads && job.apply('cancel')) {
      job.reply.abort();
      job.resolve();
    }
  }

  /** The request leaves flight: `respond` gives the answer of our own, if any, then the reply ends. */
  private finish(job: Job, respond: () => void): void {
    const at = this.inflight.indexOf(job);
    if (at >= 0) this.inflight.splice(at, 1);
    if (job.state !== 'cancelled') {
      if (!job.request.onAbort) job.request.signal.removeEventListener('abort', job.onAbort);
      respond();
      this.endOnce(job, true);
      job.resolve();
    }
    this.pump();
  }

  /** finish with an error page when nothing of the response went out yet (else just a close). */
  private finishWithError(job: Job, status: number): void {
    this.finish(job, () => this.sendError(job, status));
  }

  // -- frames from Python ------------------------------------------------------------------

  private logFrame(frame: Frame): void {
    const level = LEVELS[frame.payload[0] ?? 1] ?? 'info';
    const text = frame.payload.subarray(1).toString('utf8');
    this.logger[level]('wsgi.errors', { text });
  }

  private onFrame(proc: PythonProcess, frame: Frame): void {
    if (frame.type === T.log) return this.logFrame(frame);
    if (proc !== this.proc) return;
    const first = this.inflight[0];
    const job = first !== undefined && first.id === frame.id ? first : this.inflight.find((j) => j.id === frame.id);
    if (!job) return;
    if (job.state === 'cancelled') {
      if (frame.type === T.data) job.ackNow += frame.payload.length;
      else if (frame.type === T.done || frame.type === T.whole) this.finish(job, () => {});
      return;
    }
    switch (frame.type) {
      case T.head:
        return this.onHead(job, frame.payload);
      case T.data:
        return this.onBody(job, frame.payload);
      case T.done:
        return this.onDone(job, frame.payload[0] ?? DONE_ERROR, frame.payload.subarray(1).toString('utf8').trimEnd());
      case T.whole:
        return this.onWhole(job, frame.payload);
    }
  }

  private onHead(job: Job, payload: Buffer): void {
    if (!job.can('head')) return;
    try {
      // translateHead refuses unsafe names, values and lengths (InvalidResponseHeadError).
      const { head, framing } = translateHead(job.reply, payload, this.version);
      job.apply('head');
      job.framing = framing;
      job.reply.write(head);
    } catch (err) {
      job.request.reportError?.(err);
      this.logger.error('invalid response head from the WSGI app; answering 500', {
        path: job.request.message.path,
        error: (err as Error).message,
      });
      this.sendError(job, 500);
      this.proc?.send(T.cancel, job.id);
    }
  }

  private onBody(job: Job, payload: Buffer): void {
    const size = payload.length;
    const reply = job.reply;
    const framing = job.framing;
    if (job.state !== 'head-sent' || framing === undefined || reply.closed || framing.framing === 'none') {
      job.ackNow += size;
      return;
    }
    const { parts, overflow } = frameBody(framing, payload);
    if (overflow) {
      this.logger.warn('the WSGI app sent more than its Content-Length; extra bytes dropped', {
        path: job.request.message.path,
      });
    }
    let ok = true;
    for (const part of parts) ok = reply.write(part);
    if (ok && !job.waitingDrain) {
      job.ackNow += size;
      return;
    }
    job.pendingAck += size;
    if (job.waitingDrain) return;
    job.waitingDrain = true;
    void reply.drained().then(() => {
      job.waitingDrain = false;
      const bytes = job.pendingAck;
      job.pendingAck = 0;
      if (this.isInflight(job) && bytes > 0) this.proc?.send(T.ack, job.id, encodeAck(bytes));
    });
  }

  private flushAcks(proc: PythonProcess): void {
    if (proc !== this.proc) return;
    for (const job of this.inflight) {
      if (job.ackNow === 0) continue;
      proc.send(T.ack, job.id, encodeAck(job.ackNow));
      job.ackNow = 0;
    }
  }

  /** A whole response in one frame: its head, its body, and its (complete) end. */
  private onWhole(job: Job, payload: Buffer): void {
    let parts: { readonly head: Buffer; readonly body: Buffer };
    try {
      parts = decodeWhole(payload);
    } catch (err) {
      this.logger.error('garbled response from the Python bridge; answering 500', { error: (err as Error).message });
      this.sendError(job, 500);
      return this.finish(job, () => {});
    }
    this.onHead(job, parts.head);
    if (parts.body.length > 0) this.onBody(job, parts.body);
    this.onDone(job, DONE_OK, '');
  }

  private onDone(job: Job, outcome: number, detail: string): void {
    job.ackNow = 0;
    this.finish(job, () => {
      if (job.state === 'failed') return;
      if (outcome === DONE_OK && job.state === 'head-sent' && job.framing !== undefined) {
        const end = responseEnd(job.framing);
        if (end.missing > 0 && (job.aborted || job.reply.closed)) {
          // The bytes after the client left were dropped uncounted: the app is not at fault.
          this.logger.info('the client disconnected before the end of the response', {
            path: job.request.message.path,
            missing: end.missing,
          });
        } else if (end.missing > 0) {
          this.logger.warn('the WSGI app sent less than its Content-Length; closing the connection', {
            path: job.request.message.path,
            missing: end.missing,
          });
        }
        job.reply.end(end.last, end.close);
        job.apply('end');
        return;
      }
      if (outcome === DONE_OK || outcome === DONE_ERROR) {
        const m = job.request.message;
        const traceback = detail || 'the app returned without calling start_response()';
        job.request.reportError?.(new PythonAppError(traceback, 'WSGI'));
        this.logger.error('the WSGI app raised an exception', { method: m.headers.METHOD, path: m.path, traceback });
        this.sendError(job, 500);
      }
      // Cancelled, or failed after the head: end with a close so a truncated body is visible.
    });
  }

  private onExit(proc: PythonProcess, description: string, complete: boolean): void {
    if (!this.bridges.exited(proc, description)) return;
    // All of its output was read: the first `threads` requests in flight may have been running;
    // the others never started, and go back to the front of the queue for the next process.
    // (Unless fd 4 stayed open, or we are closing: then they are answered 502/503, not run twice.)
    const { running, retry, answer } = afterCrash(this.inflight.splice(0), complete, this.closing, this.threads);
    for (const job of retry) job.apply('requeue');
    this.queue.unshift(...retry);
    for (const job of answer) this.finishWithError(job, this.closing ? 503 : 502);
    this.inflight.push(...running);
    for (const job of running) this.finishWithError(job, 502);
    if (running.length === 0) this.pump();
  }

  // -- answers of our own -----------------------------------------------------------------

  /** An error page, only while nothing of the response went out (the `fail` transition). */
  private sendError(job: Job, status: number): void {
    if (!job.apply('fail')) return;
    job.reply.end(errorAnswer(job.reply, status, this.version), true);
  }

  /** End the reply (with a close) unless it was ended, failed or cancelled already. */
  private endOnce(job: Job, close: boolean): void {
    if (!job.apply('end')) return;
    job.reply.end(undefined, close);
  }
}

export const create: GatewayFactory = async (app: LoadedApp, options: GatewayOptions): Promise<Gateway> => {
  if (!isPythonSpec(app.app)) {
    throw new TypeError(`the WSGI gateway needs a WSGI app spec (from loaders/wsgi.ts), got ${typeof app.app}`);
  }
  const gateway = new WsgiGateway(app.app, options);
  gateway.setProcess(await gateway.start());
  return gateway;
};
