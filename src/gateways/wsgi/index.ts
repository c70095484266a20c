/**
 * The WSGI gateway: serves a Python WSGI app (PEP 3333) through one Python child process per
 * worker, running bridge.py and talking the pipe protocol of ./pipe.ts over fds 3 and 4.
 *
 * Concurrency: one request at a time per Python process, like the original wsgid's workers. Other
 * requests wait in this gateway's FIFO queue; run more workers (--workers) for parallelism.
 * Pipelining: up to PIPELINE requests are in flight to Python at once (environ and small inline
 * body sent ahead), so that Python goes from one request to the next without a round trip; it
 * still runs them one at a time, in order, and answers in order. Uploads (bodyFile) and large
 * bodies are sent only when nothing else is in flight.
 *
 * Failures:
 * - the app raises → bridge reports it, we answer 500 (or, if the head is out, end the response
 *   with a close so the client sees it truncated) and log the traceback; Python goes on;
 * - the Python process dies → the current request gets 502 (or a close if its head is out) and the
 *   gateway starts a new Python process before the next request (quick crash loops back off
 *   exponentially, up to 10 s; a restart that fails to load answers queued requests 502);
 * - a hang is the master's business (its request timeout replaces the worker; bridge.py dies with
 *   the worker through PR_SET_PDEATHSIG).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Gateway, GatewayFactory, GatewayOptions, GatewayRequest, LoadedApp } from '../types.js';
import type { ReplyChannel } from '../../http/reply-channel.js';
import { CHUNK_SUFFIX, chunkPrefix, frameHead, LAST_CHUNK, type Framing } from '../../http/head.js';
import { errorResponse } from '../../http/error-response.js';
import type { ErrorCode } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import { buildEnviron } from './environ.js';
import {
  decodeHead,
  DONE_ERROR,
  DONE_OK,
  encodeAck,
  encodeEnviron,
  encodeFrame,
  FrameDecoder,
  T,
  type Frame,
} from './pipe.js';
import { isWsgiSpec, type WsgiSpec } from './spec.js';

/** Bytes of response body bridge.py may send ahead of our acknowledgements. */
const WINDOW = 1024 * 1024;
/** Size of the B frames a request body is cut into. */
const BODY_FRAME = 256 * 1024;
const MAX_RESTART_DELAY = 10_000;
/** A Python process that dies sooner than this after starting counts as a crash loop. */
const QUICK_CRASH_MS = 2_000;
/** Requests in flight to one Python process at most (the one running and those sent ahead). */
const PIPELINE = 8;
/** Only requests with an inline body at most this long are sent ahead of their turn. */
const PIPELINE_BODY_MAX = 64 * 1024;
/** After the process exited, how long to wait for the end of its fd 4 (its last frames). */
const EXIT_DRAIN_MS = 1_000;

/**
 * bridge.py ships in src/ (package.json "files" has src/): next to this file when running from
 * source, ../../../../src/gateways/wsgi/ from dist/src/gateways/wsgi/.
 */
export function bridgePath(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, 'bridge.py'), path.resolve(here, '../../../../src/gateways/wsgi/bridge.py')];
  for (const candidate of candidates) if (existsSync(candidate)) return candidate;
  throw new Error(`wsgid's Python bridge is missing (looked for ${candidates.join(', ')})`);
}

type LogLevelName = 'debug' | 'info' | 'warn' | 'error';
const LEVELS: readonly LogLevelName[] = ['debug', 'info', 'warn', 'error'];

interface ProcessEvents {
  frame(proc: PythonProcess, frame: Frame): void;
  batchEnd(proc: PythonProcess): void;
  /** `complete`: all of fd 4 was read (false when it stayed open EXIT_DRAIN_MS after the exit). */
  exit(proc: PythonProcess, description: string, complete: boolean): void;
}

/** One bridge.py child: spawn, frame I/O, stdout/stderr to the log. */
class PythonProcess {
  readonly child: ChildProcess;
  readonly startedAt = Date.now();
  exited = false;
  /** Last lines of stderr, for load errors that happen before the bridge can report them. */
  stderrTail = '';
  private readonly out: Writable;
  private readonly decoder = new FrameDecoder();
  /** Frames written during this event-loop turn leave in one write (cork until setImmediate). */
  private corked = false;
  private exitDescription: string | undefined;
  private outputEnded = false;

  constructor(
    readonly spec: WsgiSpec,
    private readonly logger: Logger,
    private readonly events: ProcessEvents,
  ) {
    this.child = spawn(spec.python, [bridgePath()], {
      cwd: spec.cwd,
      env: { ...process.env, ...spec.envs, PYTHONUNBUFFERED: '1', WSGID_PARENT_PID: String(process.pid) },
      stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'],
    });
    const toPython = this.child.stdio[3];
    const fromPython = this.child.stdio[4];
    if (!(toPython instanceof Writable) || !(fromPython instanceof Readable)) {
      throw new Error('could not open the pipes to the Python bridge');
    }
    this.out = toPython;
    // EPIPE when Python died: the exit handler does the real work.
    this.out.on('error', () => {});
    fromPython.on('error', () => {});
    fromPython.on('data', (chunk: Buffer) => this.onData(chunk));
    fromPython.on('close', () => {
      this.outputEnded = true;
      if (this.exitDescription !== undefined) this.onExit(this.exitDescription, true);
    });
    const { stdout, stderr } = this.child;
    if (stdout) forwardLines(stdout, (line) => this.logger.info(`app stdout: ${line}`));
    if (stderr) {
      forwardLines(stderr, (line) => {
        this.stderrTail = (this.stderrTail + line + '\n').slice(-4000);
        this.logger.warn(`app stderr: ${line}`);
      });
    }
    let description = '';
    this.child.on('error', (err: Error) => {
      description = `could not run ${JSON.stringify(spec.python)}: ${err.message}`;
      this.onExit(description, true);
    });
    this.child.on('exit', (code, signal) => {
      description ||= signal ? `killed by ${signal}` : `exited with code ${code ?? '?'}`;
      // Let the last frames (all of fd 4: the gateway must know which requests Python finished)
      // and stderr lines arrive first.
      this.exitDescription = description;
      if (this.outputEnded) setImmediate(() => this.onExit(description, true));
      else setTimeout(() => this.onExit(description, false), EXIT_DRAIN_MS).unref();
    });
  }

  private onExit(description: string, complete: boolean): void {
    if (this.exited) return;
    this.exited = true;
    this.events.exit(this, description, complete);
  }

  private onData(chunk: Buffer): void {
    this.decoder.push(chunk);
    try {
      for (let frame = this.decoder.next(); frame; frame = this.decoder.next()) this.events.frame(this, frame);
    } catch (err) {
      this.logger.error('garbled data from the Python bridge; killing it', { error: err });
      this.kill('SIGKILL');
      return;
    }
    this.events.batchEnd(this);
  }

  send(type: number, id: number, payload?: Buffer): void {
    if (this.exited) return;
    if (!this.corked) {
      this.corked = true;
      this.out.cork();
      setImmediate(() => {
        this.corked = false;
        this.out.uncork();
      });
    }
    for (const part of encodeFrame(type, id, payload)) this.out.write(part);
  }

  /** An environ frame, the body cut in B frames, and the body end (one write with the turn's others). */
  sendRequest(id: number, environ: Buffer, body: Buffer | undefined): void {
    if (this.exited) return;
    this.send(T.environ, id, environ);
    if (body) {
      for (let at = 0; at < body.length; at += BODY_FRAME) this.send(T.body, id, body.subarray(at, at + BODY_FRAME));
    }
    this.send(T.bodyEnd, id);
  }

  kill(signal: NodeJS.Signals): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }

  /** Ask the bridge to exit, then insist. */
  async stop(graceMs: number): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.send(T.quit, 0);
    if (this.corked) {
      this.corked = false;
      this.out.uncork();
    }
    this.out.end();
    const wait = (ms: number): Promise<boolean> =>
      Promise.race([gone.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
    if (await wait(graceMs)) return;
    this.kill('SIGTERM');
    if (await wait(1000)) return;
    this.kill('SIGKILL');
    await wait(1000);
  }
}

function forwardLines(stream: Readable, line: (text: string) => void): void {
  let carry = '';
  stream.setEncoding('utf8');
  stream.on('data', (text: string) => {
    carry += text;
    let newline = carry.indexOf('\n');
    while (newline >= 0) {
      line(carry.slice(0, newline).replace(/\r$/, ''));
      carry = carry.slice(newline + 1);
      newline = carry.indexOf('\n');
    }
    if (carry.length > 16_384) {
      line(carry);
      carry = '';
    }
  });
  stream.on('end', () => {
    if (carry !== '') line(carry);
    carry = '';
  });
}

interface Job {
  readonly id: number;
  readonly request: GatewayRequest;
  readonly reply: ReplyChannel;
  readonly resolve: () => void;
  readonly onAbort: () => void;
  /** The request was handed to Python (E frame sent). */
  sent: boolean;
  /** Aborted while sent ahead: already answered (reply aborted, promise resolved); Python skips it. */
  dropped: boolean;
  /** D bytes passed on and not yet acknowledged (sent at the end of the batch of frames). */
  ackNow: number;
  headSent: boolean;
  framing: Framing;
  /** Body bytes still allowed by the Content-Length in the head ('length' framing). */
  remaining: number;
  /** The connection must be closed after the response. */
  close: boolean;
  /** We answered already (bad head from the app); drop the rest, wait for Python to finish. */
  failed: boolean;
  ended: boolean;
  pendingAck: number;
  waitingDrain: boolean;
}

class WsgiGateway implements Gateway {
  private proc: PythonProcess | undefined;
  private restarting = false;
  private crashes = 0;
  /** Requests sent (or being sent) to Python, in order; the first is the one Python runs. */
  private readonly inflight: Job[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closing = false;
  private readonly logger: Logger;
  private readonly version: string;

  constructor(
    private readonly spec: WsgiSpec,
    options: GatewayOptions,
  ) {
    this.logger = options.logger;
    this.version = options.version;
  }

  /** Start Python and load the app; rejects with the Python traceback when it cannot. */
  start(): Promise<PythonProcess> {
    return new Promise<PythonProcess>((resolve, reject) => {
      let settled = false;
      const proc = new PythonProcess(this.spec, this.logger, {
        frame: (p, frame) => {
          if (settled) return this.onFrame(p, frame);
          if (frame.type === T.log) return this.logFrame(frame);
          if (frame.type === T.ready) {
            settled = true;
            this.logger.info('WSGI app loaded', { app: frame.payload.toString('utf8'), pid: p.child.pid });
            resolve(p);
          } else if (frame.type === T.loadFailed) {
            settled = true;
            const traceback = frame.payload.toString('utf8').trimEnd();
            void p.stop(2000);
            reject(new Error(`the WSGI app failed to load (${this.spec.python}):\n${traceback}`));
          }
        },
        batchEnd: (p) => this.flushAcks(p),
        exit: (p, description, complete) => {
          if (settled) return this.onExit(p, description, complete);
          settled = true;
          const tail = p.stderrTail.trimEnd();
          reject(
            new Error(
              `the Python bridge (${this.spec.python}) ${description} before loading the app` + (tail ? `:\n${tail}` : ''),
            ),
          );
        },
      });
      const config = {
        entry: this.spec.entry ?? null,
        candidates: this.spec.candidates,
        django: this.spec.django ?? null,
        sysPath: this.spec.sysPath,
        cwd: this.spec.cwd,
        window: WINDOW,
      };
      proc.send(T.init, 0, Buffer.from(JSON.stringify(config), 'utf8'));
    });
  }

  setProcess(proc: PythonProcess): void {
    this.proc = proc;
  }

  handle(request: GatewayRequest, reply: ReplyChannel): Promise<void> {
    return new Promise<void>((resolve) => {
      const job: Job = {
        id: this.nextId,
        request,
        reply,
        resolve,
        onAbort: () => this.abort(job),
        sent: false,
        dropped: false,
        ackNow: 0,
        headSent: false,
        framing: 'none',
        remaining: 0,
        close: false,
        failed: false,
        ended: false,
        pendingAck: 0,
        waitingDrain: false,
      };
      this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
      if (request.signal.aborted || this.closing) {
        if (this.closing && !request.signal.aborted) this.sendError(job, 503);
        this.endOnce(job, true);
        resolve();
        return;
      }
      request.signal.addEventListener('abort', job.onAbort, { once: true });
      this.queue.push(job);
      this.pump();
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const job of this.queue.splice(0)) this.finishWithError(job, 503);
    // The bridge serves the requests it was sent, then exits: their frames are still handled.
    const proc = this.proc;
    if (proc) await proc.stop(this.inflight.length > 0 ? 5000 : 2000);
    this.proc = undefined;
    // Python did not finish them (it was killed): answer what can still be answered.
    for (const job of this.inflight.splice(0)) {
      if (job.dropped) continue;
      this.finish(job, () => {
        if (!job.headSent && !job.failed) this.sendError(job, 503);
      });
    }
  }

  // -- scheduling ---------------------------------------------------------------------------

  private pump(): void {
    while (this.queue.length > 0 && !this.closing) {
      const proc = this.proc;
      if (!proc || proc.exited) {
        if (this.inflight.length === 0) this.restart();
        return;
      }
      const next = this.queue[0]!;
      if (this.inflight.length > 0) {
        // Send ahead only small inline bodies, behind requests already fully sent.
        const last = this.inflight[this.inflight.length - 1]!;
        const small = next.request.bodyFile === undefined && next.request.message.body.length <= PIPELINE_BODY_MAX;
        if (!small || !last.sent || this.inflight.length >= PIPELINE) return;
      }
      this.queue.shift();
      this.inflight.push(next);
      void this.run(next, proc);
    }
  }

  private isInflight(job: Job): boolean {
    return this.inflight.includes(job);
  }

  private restart(): void {
    if (this.restarting || this.closing) return;
    this.restarting = true;
    const delay = this.crashes === 0 ? 0 : Math.min(100 * 2 ** (this.crashes - 1), MAX_RESTART_DELAY);
    this.logger.info('starting a new Python process for the WSGI app', { delayMs: delay });
    setTimeout(() => {
      this.start().then(
        (proc) => {
          this.proc = proc;
        },
        (err: Error) => {
          this.crashes++;
          this.logger.error('the WSGI app could not be restarted', { error: err.message });
          for (const job of this.queue.splice(0)) this.finishWithError(job, 502);
        },
      ).finally(() => {
        this.restarting = false;
        if (this.closing && this.proc) void this.proc.stop(1000);
        else this.pump();
      });
    }, delay);
  }

  private async run(job: Job, proc: PythonProcess): Promise<void> {
    const { message, bodyFile } = job.request;
    let bodyLength = message.body.length;
    if (bodyFile !== undefined) {
      try {
        bodyLength = (await stat(bodyFile)).size;
      } catch (err) {
        this.logger.error('cannot read the upload file', { file: bodyFile, error: (err as Error).message });
        if (this.isInflight(job)) this.finish(job, () => this.sendError(job, 500));
        return;
      }
      if (!this.isInflight(job)) return;
      if (job.request.signal.aborted || proc.exited) {
        this.finish(job, () => this.endOnce(job, true));
        if (proc.exited) this.pump();
        return;
      }
    }
    const environ = buildEnviron(message, bodyLength, { serverName: this.spec.serverName });
    if (bodyFile !== undefined) environ.push(['wsgid.body_file', Buffer.from(bodyFile, 'utf8').toString('latin1')]);
    job.sent = true;
    proc.sendRequest(job.id, encodeEnviron(environ), bodyFile === undefined ? message.body : undefined);
    if (bodyFile !== undefined) this.pump(); // the requests behind it may go now
  }

  private abort(job: Job): void {
    const queued = this.queue.indexOf(job);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      job.ended = true;
      job.reply.abort();
      job.resolve();
      return;
    }
    const at = this.inflight.indexOf(job);
    if (at < 0 || !job.sent) return; // an upload being prepared: run() sees the abort
    this.proc?.send(T.cancel, job.id);
    if (at > 0 && !job.headSent) {
      // Sent ahead, not started as far as we know: answer now; Python skips it (or, if it had
      // started, stops at the next chunk) and its frames are ignored.
      job.dropped = true;
      job.ended = true;
      job.reply.abort();
      job.resolve();
    }
  }

  private finish(job: Job, respond: () => void): void {
    const at = this.inflight.indexOf(job);
    if (at >= 0) this.inflight.splice(at, 1);
    if (!job.dropped) {
      job.request.signal.removeEventListener('abort', job.onAbort);
      respond();
      this.endOnce(job, true);
      job.resolve();
    }
    this.pump();
  }

  private finishWithError(job: Job, status: number): void {
    this.finish(job, () => {
      if (!job.headSent) this.sendError(job, status);
    });
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
    if (job.dropped) {
      if (frame.type === T.data) job.ackNow += frame.payload.length;
      else if (frame.type === T.done) this.finish(job, () => {});
      return;
    }
    switch (frame.type) {
      case T.head:
        return this.onHead(job, frame.payload);
      case T.data:
        return this.onBody(job, frame.payload);
      case T.done:
        return this.onDone(job, frame.payload);
    }
  }

  private onHead(job: Job, payload: Buffer): void {
    if (job.failed || job.headSent) return;
    const reply = job.reply;
    try {
      const head = decodeHead(payload);
      // frameHead refuses unsafe names, values and lengths (InvalidResponseHeadError).
      const framed = frameHead(reply, head.status, head.headers, head.bodyLength, this.version, head.reason || undefined);
      job.headSent = true;
      job.framing = framed.framing;
      job.close = framed.close;
      const declared = head.headers.find(([name]) => name.toLowerCase() === 'content-length')?.[1];
      job.remaining = declared !== undefined ? Number(declared.trim()) : head.bodyLength ?? 0;
      reply.write(Buffer.from(framed.head, 'latin1'));
    } catch (err) {
      job.request.reportError?.(err);
      this.logger.error('invalid response head from the WSGI app; answering 500', {
        path: job.request.message.path,
        error: (err as Error).message,
      });
      job.failed = true;
      this.sendError(job, 500);
      this.proc?.send(T.cancel, job.id);
    }
  }

  private onBody(job: Job, payload: Buffer): void {
    const size = payload.length;
    const reply = job.reply;
    if (job.failed || reply.closed || !job.headSent || job.framing === 'none') {
      job.ackNow += size;
      return;
    }
    let ok = true;
    switch (job.framing) {
      case 'length': {
        const take = Math.min(size, job.remaining);
        if (take < size && job.remaining >= 0) {
          this.logger.warn('the WSGI app sent more than its Content-Length; extra bytes dropped', {
            path: job.request.message.path,
          });
          job.remaining = -1; // warned
        }
        if (take > 0) {
          job.remaining -= take;
          ok = reply.write(take < size ? payload.subarray(0, take) : payload);
        }
        break;
      }
      case 'chunked':
        reply.write(chunkPrefix(size));
        reply.write(payload);
        ok = reply.write(CHUNK_SUFFIX);
        break;
      default:
        ok = reply.write(payload);
    }
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

  private onDone(job: Job, payload: Buffer): void {
    job.ackNow = 0;
    const outcome = payload[0] ?? DONE_ERROR;
    const detail = payload.subarray(1).toString('utf8').trimEnd();
    const reply = job.reply;
    this.finish(job, () => {
      if (job.failed) return;
      if (outcome === DONE_OK && job.headSent) {
        switch (job.framing) {
          case 'chunked':
            reply.end(LAST_CHUNK, job.close);
            break;
          case 'length':
            if (job.remaining > 0) {
              this.logger.warn('the WSGI app sent less than its Content-Length; closing the connection', {
                path: job.request.message.path,
                missing: job.remaining,
              });
              reply.end(undefined, true);
            } else reply.end(undefined, job.close);
            break;
          case 'close':
            reply.end(undefined, true);
            break;
          default:
            reply.end(undefined, job.close);
        }
        job.ended = true;
        return;
      }
      if (outcome === DONE_OK || outcome === DONE_ERROR) {
        const m = job.request.message;
        const traceback = detail || 'the app returned without calling start_response()';
        job.request.reportError?.(new WsgiAppError(traceback));
        this.logger.error('the WSGI app raised an exception', { method: m.headers.METHOD, path: m.path, traceback });
        if (!job.headSent) this.sendError(job, 500);
      }
      // Cancelled, or failed after the head: end with a close so a truncated body is visible.
    });
  }

  private onExit(proc: PythonProcess, description: string, complete: boolean): void {
    if (proc !== this.proc) return;
    this.proc = undefined;
    const lived = Date.now() - proc.startedAt;
    this.crashes = lived < QUICK_CRASH_MS ? this.crashes + 1 : 0;
    if (!this.closing) this.logger.error(`the Python process of the WSGI app ${description}`, { pid: proc.child.pid });
    // All of its output was read: the first request in flight is the one that was running; the
    // others never started, and go back to the front of the queue for the next process.
    // (Unless fd 4 stayed open, or we are closing: then they are answered 502/503, not run twice.)
    const [job, ...notStarted] = this.inflight.splice(0);
    const retry = notStarted.filter((j) => !j.dropped);
    if (complete && !this.closing) {
      for (const j of retry) j.sent = false;
      this.queue.unshift(...retry);
    } else {
      for (const j of retry) this.finish(j, () => this.sendError(j, this.closing ? 503 : 502));
    }
    if (job && !job.dropped) {
      this.inflight.push(job);
      this.finish(job, () => {
        if (!job.headSent && !job.failed) this.sendError(job, 502);
      });
    } else this.pump();
  }

  // -- answers of our own -----------------------------------------------------------------

  private sendError(job: Job, status: number): void {
    const reply = job.reply;
    if (job.ended || job.headSent) return;
    job.headSent = true;
    reply.end(errorResponse(status, this.version, { method: reply.method }), true);
    job.ended = true;
  }

  private endOnce(job: Job, close: boolean): void {
    if (job.ended) return;
    job.ended = true;
    job.reply.end(undefined, close);
  }
}

/** An exception the WSGI app raised, with Python's traceback as the message (for filters' `after`). */
export class WsgiAppError extends Error {
  readonly code: ErrorCode = 'WSGID_ERR_WSGI_APP';
  constructor(readonly traceback: string) {
    super(traceback.trim().split('\n').at(-1) || 'the WSGI app failed');
    this.name = 'WsgiAppError';
  }
}

export const create: GatewayFactory = async (app: LoadedApp, options: GatewayOptions): Promise<Gateway> => {
  if (!isWsgiSpec(app.app)) {
    throw new TypeError(`the WSGI gateway needs a WSGI app spec (from loaders/wsgi.ts), got ${typeof app.app}`);
  }
  const gateway = new WsgiGateway(app.app, options);
  gateway.setProcess(await gateway.start());
  return gateway;
};
