/**
 * The ASGI gateway: serves an ASGI 3.0 app (FastAPI, Starlette, Django's asgi.py) through one
 * Python child process per worker running asgi_bridge.py (asyncio, standard library only). The
 * process plumbing is the WSGI gateway's (../wsgi/python-process.ts: spawn, frames over fds 3/4,
 * stdout/stderr to the log, stop), and so is the HTTP translation (../wsgi/response.ts); the
 * frames are described in ./protocol.ts, the scope in ./scope.ts. docs/asgi.md is the user's view.
 *
 * Concurrency: every request goes to Python at once and runs as a task on its event loop; the
 * worker's credit (--worker-connections) bounds how many run together.
 *
 * Lifespan: the bridge runs `lifespan.startup` before it reports ready (a failure is a load error:
 * the start stops with the app's message), and `lifespan.shutdown` when the gateway closes.
 *
 * Failures, as the WSGI gateway: the app raises → 500 (or a close once the head is out); the
 * Python process dies → 502 for every request it held (WebSockets get a 1011 close) and a new
 * process before the next request (with backoff); a hang is the master's business (504).
 */
import { stat } from 'node:fs/promises';
import type { Gateway, GatewayFactory, GatewayOptions, GatewayRequest, LoadedApp, WebSocketListener, WebSocketSession } from '../types.js';
import type { ReplyChannel } from '../../http/reply-channel.js';
import { PythonAppError } from '../python/errors.js';
import type { Logger } from '../../log/logger.js';
import {
  CLOSE_ABNORMAL,
  CLOSE_GOING_AWAY,
  CLOSE_INTERNAL_ERROR,
  CLOSE_INVALID_DATA,
  CLOSE_NO_STATUS,
  CLOSE_PROTOCOL_ERROR,
  OPCODE_BINARY,
  OPCODE_CLOSE,
  OPCODE_PING,
  OPCODE_PONG,
  OPCODE_TEXT,
  closePayload,
  closingReply,
  encodeFrame,
  parseClosePayload,
  switchingProtocolsHead,
} from '../../http/websocket.js';
import { DONE_CANCELLED, DONE_ERROR, DONE_OK, encodeAck, type Frame } from '../python/pipe.js';
import { bridgePath, launchBridge, type PythonProcess } from '../python/bridge-process.js';
import { errorAnswer, frameBody, responseEnd, translateHead } from '../python/response.js';
import { BridgeSupervisor } from '../python/supervisor.js';
import { isPythonSpec, type PythonSpec } from '../python/spec.js';
import { Exchange } from './exchange.js';
import { CANCEL_TIMED_OUT, decodeAccept, decodeClose, encodeCancel, encodeWsFrame, T } from './protocol.js';
import { buildScope } from './scope.js';

/** Bytes of response body (or WebSocket messages) the bridge may send ahead of our acknowledgements. */
const WINDOW = 1024 * 1024;
/** After our close frame, how long we wait for the client's before closing the connection. */
const CLOSE_TIMEOUT_MS = 5000;
/** Time the bridge gets to finish its tasks and run the lifespan shutdown when the worker stops. */
const STOP_GRACE_MS = 10_000;

type LogLevelName = 'debug' | 'info' | 'warn' | 'error';
const LEVELS: readonly LogLevelName[] = ['debug', 'info', 'warn', 'error'];
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

class AsgiGateway implements Gateway {
  /** The Python process, its restarts and stop. */
  private readonly bridges: BridgeSupervisor;
  private nextId = 1;
  /** Scopes handed to Python (or being prepared), by id. */
  private readonly live = new Map<number, Exchange>();
  /** Exchanges with bytes to acknowledge at the end of this batch: not a walk over every live one. */
  private acksDue: Exchange[] = [];
  /** Requests that came while no Python process was running (a restart is under way). */
  private readonly waiting: Exchange[] = [];
  private readonly logger: Logger;
  private readonly version: string;

  constructor(
    private readonly spec: PythonSpec,
    options: GatewayOptions,
  ) {
    this.logger = options.logger;
    this.version = options.version;
    this.bridges = new BridgeSupervisor('ASGI', this.logger, {
      start: () => this.start(),
      restartFailed: () => {
        for (const ex of this.waiting.splice(0)) this.fail(ex, 502);
      },
      restarted: (proc) => {
        if (proc) for (const ex of this.waiting.splice(0)) void this.send(ex, proc);
      },
    });
  }

  private get proc(): PythonProcess | undefined {
    return this.bridges.proc;
  }

  private get closing(): boolean {
    return this.bridges.closing;
  }

  /** Start Python, load the app and run its lifespan startup; rejects with Python's message when it cannot. */
  start(): Promise<PythonProcess> {
    return launchBridge(this.spec, this.logger, {
      // A load failure is the same error as WSGI's: `wsgid start` shows the traceback and its hints.
      kind: 'ASGI',
      config: {
        window: WINDOW,
      },
      events: {
        frame: (p, frame) => this.onFrame(p, frame),
        batchEnd: (p) => this.flushAcks(p),
        exit: (p, description) => this.onExit(p, description),
      },
      script: bridgePath('asgi_bridge.py'),
    });
  }

  setProcess(proc: PythonProcess): void {
    this.bridges.proc = proc;
  }

  handle(request: GatewayRequest, reply: ReplyChannel): Promise<void> {
    return new Promise<void>((resolve) => this.admit(new Exchange(this.takeId(), request, reply, resolve)));
  }

  upgrade(request: GatewayRequest, reply: ReplyChannel, session: WebSocketSession): Promise<void> {
    // A refused handshake is an ordinary response after which the connection closes.
    return new Promise<void>((resolve) => this.admit(new Exchange(this.takeId(), request, closingReply(reply), resolve, session, reply)));
  }

  async close(): Promise<void> {
    this.bridges.closing = true;
    for (const ex of this.waiting.splice(0)) this.fail(ex, 503);
    // The bridge finishes what it runs, runs the lifespan shutdown, then exits; frames still count.
    await this.bridges.stop(STOP_GRACE_MS);
    for (const ex of [...this.live.values()]) this.abandon(ex, 503);
  }

  private takeId(): number {
    const id = this.nextId;
    this.nextId = id >= 0xffffffff ? 1 : id + 1;
    return id;
  }

  // -- requests in ------------------------------------------------------------------------------

  private admit(ex: Exchange): void {
    const request = ex.request;
    const abort = (): void => this.onAbort(ex);
    // request.onAbort when the worker offers it: no AbortController per request (as the WSGI gateway).
    const listening = request.onAbort ? request.onAbort(abort) : !request.signal.aborted;
    if (!listening || this.closing) {
      if (this.closing && listening) this.fail(ex, 503);
      else this.drop(ex);
      return;
    }
    if (!request.onAbort) request.signal.addEventListener('abort', abort, { once: true });
    const proc = this.proc;
    if (!proc || proc.exited) {
      this.waiting.push(ex);
      this.bridges.restart();
      return;
    }
    void this.send(ex, proc);
  }

  /** Send the scope (an upload is measured first: a missing file is a 500). */
  private async send(ex: Exchange, proc: PythonProcess): Promise<void> {
    const { message, bodyFile } = ex.request;
    this.live.set(ex.id, ex);
    if (bodyFile !== undefined) {
      try {
        await stat(bodyFile);
      } catch (err) {
        this.logger.error('cannot read the upload file', { file: bodyFile, error: (err as Error).message });
        return this.fail(ex, 500);
      }
      if (ex.state !== 'preparing') return; // the client left meanwhile
      if (proc.exited) {
        this.live.delete(ex.id);
        this.waiting.push(ex);
        return this.bridges.restart();
      }
    }
    const scope = buildScope(message, ex.websocket ? 'websocket' : 'http', { serverName: this.spec.serverName });
    const json = bodyFile !== undefined ? { ...scope, body_file: Buffer.from(bodyFile, 'utf8').toString('latin1') } : scope;
    ex.state = 'sent';
    proc.send(T.scope, ex.id, Buffer.from(JSON.stringify(json), 'utf8'));
    if (ex.websocket) return;
    const body = bodyFile === undefined ? message.body : undefined;
    if (body && body.length > 0) {
      for (let at = 0; at < body.length; at += 256 * 1024) proc.send(T.body, ex.id, body.subarray(at, at + 256 * 1024));
    }
    proc.send(T.bodyEnd, ex.id);
  }

  /** mongrel2 reported the client gone (or the worker stopped the request). */
  private onAbort(ex: Exchange): void {
    if (ex.state === 'done') return;
    const queued = this.waiting.indexOf(ex);
    if (queued >= 0) this.waiting.splice(queued, 1);
    if (this.live.has(ex.id) && ex.state !== 'preparing') {
      // Timed out (the master answered 504, --timeout: a DOMException named TimeoutError, as
      // AbortSignal.timeout() gives): the task is cancelled, it need not listen for http.disconnect.
      const timedOut = !ex.websocket && (ex.request.signal.reason as { name?: unknown } | undefined)?.name === 'TimeoutError';
      this.proc?.send(T.cancel, ex.id, timedOut ? CANCEL_TIMED_OUT : undefined);
    }
    if (ex.websocket && ex.state === 'open') return; // gone() tells Python and ends the session
    this.live.delete(ex.id);
    ex.state = 'done';
    ex.reply.abort();
    ex.resolve();
  }

  // -- frames from Python -----------------------------------------------------------------------

  private logFrame(frame: Frame): void {
    const level = LEVELS[frame.payload[0] ?? 1] ?? 'info';
    this.logger[level]('asgi app', { text: frame.payload.subarray(1).toString('utf8') });
  }

  private onFrame(proc: PythonProcess, frame: Frame): void {
    if (frame.type === T.log) return this.logFrame(frame);
    if (proc !== this.proc) return;
    const ex = this.live.get(frame.id);
    if (!ex) return;
    switch (frame.type) {
      case T.head:
        return this.onHead(ex, frame.payload);
      case T.data:
        return this.onBody(ex, frame.payload);
      case T.done:
        return this.onDone(ex, frame.payload);
      case T.wsAccept:
        return this.onAccept(ex, frame.payload);
      case T.wsFrame:
        return this.onWsFrame(ex, frame.payload);
      case T.wsClose:
        return this.onWsClose(ex, frame.payload);
    }
  }

  private onHead(ex: Exchange, payload: Buffer): void {
    if (ex.state !== 'sent') return;
    try {
      const { head, framing } = translateHead(ex.reply, payload, this.version);
      ex.state = 'head-sent';
      ex.framing = framing;
      ex.reply.write(head);
    } catch (err) {
      ex.request.reportError?.(err);
      this.logger.error('invalid response head from the ASGI app; answering 500', {
        path: ex.request.message.path,
        error: (err as Error).message,
      });
      this.proc?.send(T.cancel, ex.id);
      this.fail(ex, 500);
    }
  }

  private onBody(ex: Exchange, payload: Buffer): void {
    const framing = ex.framing;
    if (ex.state !== 'head-sent' || framing === undefined || ex.reply.closed || framing.framing === 'none') {
      this.ackLater(ex, payload.length);
      return;
    }
    const { parts, overflow } = frameBody(framing, payload);
    if (overflow) {
      this.logger.warn('the ASGI app sent more than its Content-Length; extra bytes dropped', { path: ex.request.message.path });
    }
    let ok = true;
    for (const part of parts) ok = ex.reply.write(part);
    this.credit(ex, payload.length, ok, () => ex.reply.drained());
  }

  /** Acknowledge `size` bytes now, or once `drained()` when the client side asked to wait. */
  private credit(ex: Exchange, size: number, ok: boolean, drained: () => Promise<void>): void {
    if (ok && !ex.waitingDrain) {
      this.ackLater(ex, size);
      return;
    }
    ex.pendingAck += size;
    if (ex.waitingDrain) return;
    ex.waitingDrain = true;
    void drained().then(() => {
      ex.waitingDrain = false;
      const bytes = ex.pendingAck;
      ex.pendingAck = 0;
      if (this.live.get(ex.id) === ex && bytes > 0) this.proc?.send(T.ack, ex.id, encodeAck(bytes));
    });
  }

  /** Acknowledge `bytes` at the end of the batch being read (one ack per exchange per batch). */
  private ackLater(ex: Exchange, bytes: number): void {
    if (bytes === 0) return;
    if (ex.ackNow === 0) this.acksDue.push(ex);
    ex.ackNow += bytes;
  }

  private flushAcks(proc: PythonProcess): void {
    const due = this.acksDue;
    if (due.length === 0) return;
    this.acksDue = [];
    for (const ex of due) {
      const bytes = ex.ackNow;
      ex.ackNow = 0;
      // 0: done meanwhile. Another process: a replaced bridge's batch; nobody reads its acks.
      if (bytes > 0 && proc === this.proc) proc.send(T.ack, ex.id, encodeAck(bytes));
    }
  }

  private onDone(ex: Exchange, payload: Buffer): void {
    this.live.delete(ex.id);
    ex.ackNow = 0;
    const outcome = payload[0] ?? DONE_ERROR;
    const detail = payload.subarray(1).toString('utf8').trimEnd();
    if (outcome === DONE_ERROR) {
      const m = ex.request.message;
      ex.request.reportError?.(new PythonAppError(detail, 'ASGI'));
      this.logger.error('the ASGI app raised an exception', { method: m.headers.METHOD, path: m.path, traceback: detail });
    }
    if (ex.state === 'open') {
      // The websocket task returned: its close frame (if any) went out just before.
      if (!ex.closeSent) this.closeSocket(ex, outcome === DONE_ERROR ? CLOSE_INTERNAL_ERROR : 1000);
      return;
    }
    if (ex.state === 'head-sent' && outcome === DONE_OK && ex.framing !== undefined) {
      const end = responseEnd(ex.framing);
      if (end.missing > 0) {
        this.logger.warn('the ASGI app sent less than its Content-Length; closing the connection', {
          path: ex.request.message.path,
          missing: end.missing,
        });
      }
      ex.state = 'done';
      ex.reply.end(end.last, end.close);
      ex.resolve();
      return;
    }
    if (ex.state === 'sent' && outcome !== DONE_CANCELLED) return this.fail(ex, 500);
    this.abandon(ex, 500);
  }

  // -- WebSockets -------------------------------------------------------------------------------

  private onAccept(ex: Exchange, payload: Buffer): void {
    const session = ex.session;
    if (ex.state !== 'sent' || session === undefined) return;
    let head: string;
    try {
      const accept = decodeAccept(payload);
      const extra = accept.headers.filter(([name]) => !/^(sec-websocket-accept|upgrade|connection|sec-websocket-protocol)$/i.test(name));
      if (accept.subprotocol) extra.unshift(['Sec-WebSocket-Protocol', accept.subprotocol]);
      // Checks every name and value (the subprotocol is a str: it may hold what Latin-1 cannot).
      head = switchingProtocolsHead(session.accept, this.version, extra);
    } catch (err) {
      this.logger.error('invalid websocket.accept from the ASGI app; answering 500', { error: (err as Error).message });
      this.proc?.send(T.cancel, ex.id, encodeCancel(CLOSE_ABNORMAL));
      return this.fail(ex, 500);
    }
    (ex.upgradeReply ?? ex.reply).end(head);
    ex.state = 'open';
    session.open(this.listenerFor(ex, session));
    ex.resolve();
  }

  private onWsFrame(ex: Exchange, payload: Buffer): void {
    const session = ex.session;
    if (ex.state !== 'open' || session === undefined || session.closed || ex.closeSent || payload.length === 0) {
      this.ackLater(ex, payload.length);
      return;
    }
    const opcode = payload[0] === OPCODE_TEXT ? OPCODE_TEXT : OPCODE_BINARY;
    const ok = session.write(encodeFrame(opcode, payload.subarray(1)));
    this.credit(ex, payload.length, ok, () => session.drained());
  }

  private onWsClose(ex: Exchange, payload: Buffer): void {
    if (ex.state !== 'open') return;
    const { code, reason } = decodeClose(payload);
    this.closeSocket(ex, code, reason);
  }

  /** Send our close frame and end the connection after the client's answer (or a timeout). */
  private closeSocket(ex: Exchange, code: number, reason = ''): void {
    const session = ex.session;
    if (session === undefined || ex.closeSent || session.closed) return;
    ex.closeSent = true;
    session.write(encodeFrame(OPCODE_CLOSE, closePayload(code, reason)));
    ex.closeTimer = setTimeout(() => this.endSocket(ex), CLOSE_TIMEOUT_MS);
    ex.closeTimer.unref();
  }

  private endSocket(ex: Exchange): void {
    if (ex.closeTimer !== undefined) clearTimeout(ex.closeTimer);
    ex.closeTimer = undefined;
    ex.session?.end();
  }

  private listenerFor(ex: Exchange, session: WebSocketSession): WebSocketListener {
    const toPython = (opcode: number, payload: Buffer): void => {
      if (this.live.get(ex.id) === ex) this.proc?.send(T.wsFrame, ex.id, encodeWsFrame(opcode, payload));
    };
    const failConnection = (code: number): void => {
      if (!ex.closeSent) {
        ex.closeSent = true;
        session.write(encodeFrame(OPCODE_CLOSE, closePayload(code)));
      }
      this.endSocket(ex);
      if (this.live.get(ex.id) === ex) this.proc?.send(T.cancel, ex.id, encodeCancel(code));
    };
    return {
      frame: (flags, payload) => {
        switch (flags & 0x0f) {
          case OPCODE_TEXT:
            try {
              strictUtf8.decode(payload);
            } catch {
              return failConnection(CLOSE_INVALID_DATA);
            }
            return toPython(OPCODE_TEXT, payload);
          case OPCODE_BINARY:
            return toPython(OPCODE_BINARY, payload);
          case OPCODE_PING:
            if (!ex.closeSent) session.write(encodeFrame(OPCODE_PONG, payload));
            return;
          case OPCODE_PONG:
            return;
          case OPCODE_CLOSE: {
            const parsed = parseClosePayload(payload);
            if (parsed === undefined) return failConnection(CLOSE_PROTOCOL_ERROR);
            if (!ex.closeSent) {
              ex.closeSent = true;
              session.write(encodeFrame(OPCODE_CLOSE, closePayload(parsed.code === CLOSE_NO_STATUS ? undefined : parsed.code)));
            }
            this.endSocket(ex);
            return toPython(OPCODE_CLOSE, payload);
          }
          default:
            return failConnection(CLOSE_PROTOCOL_ERROR);
        }
      },
      gone: (reason) => {
        if (ex.closeTimer !== undefined) clearTimeout(ex.closeTimer);
        if (this.live.get(ex.id) === ex) {
          this.proc?.send(T.cancel, ex.id, encodeCancel(reason === 'shutdown' ? CLOSE_GOING_AWAY : CLOSE_ABNORMAL));
        }
      },
    };
  }

  // -- the process ------------------------------------------------------------------------------

  private onExit(proc: PythonProcess, description: string): void {
    if (!this.bridges.exited(proc, description)) return;
    // Every scope it held was running in it: none can be retried.
    for (const ex of [...this.live.values()]) this.abandon(ex, this.closing ? 503 : 502);
    if (this.waiting.length > 0) this.bridges.restart();
  }

  // -- answers of our own -------------------------------------------------------------------

  /** An error page while nothing of the response went out; else as abandon(). */
  private fail(ex: Exchange, status: number): void {
    if (ex.state === 'preparing' || ex.state === 'sent') {
      this.live.delete(ex.id);
      ex.state = 'done';
      ex.reply.end(errorAnswer(ex.reply, status, this.version), true);
      ex.resolve();
      return;
    }
    this.abandon(ex, status);
  }

  /** End what is left of an exchange: an error page if possible, a close if the head is out, a 1011 for a WebSocket. */
  private abandon(ex: Exchange, status: number): void {
    this.live.delete(ex.id);
    if (ex.state === 'preparing' || ex.state === 'sent') return this.fail(ex, status);
    if (ex.state === 'open') {
      this.closeSocket(ex, CLOSE_INTERNAL_ERROR);
      this.endSocket(ex);
    } else if (ex.state === 'head-sent') {
      ex.reply.end(undefined, true);
    }
    ex.state = 'done';
    ex.resolve();
  }

  /** The request ended before it reached Python. */
  private drop(ex: Exchange): void {
    ex.state = 'done';
    ex.reply.end(undefined, true);
    ex.resolve();
  }
}

export const create: GatewayFactory = async (app: LoadedApp, options: GatewayOptions): Promise<Gateway> => {
  if (!isPythonSpec(app.app)) {
    throw new TypeError(`the ASGI gateway needs a Python app spec (from loaders/wsgi.ts), got ${typeof app.app}`);
  }
  const gateway = new AsgiGateway(app.app, options);
  gateway.setProcess(await gateway.start());
  return gateway;
};
