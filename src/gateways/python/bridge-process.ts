/**
 * One bridge child process per Python gateway (bridge/wsgi_bridge.py or bridge/asgi_bridge.py): spawn, the frame I/O over fds 3 and 4 (./pipe.ts),
 * stdout/stderr passed on line by line to the worker's own, and stopping it. What the frames mean is the gateway's business
 * (./index.ts); this module only moves them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../log/logger.js';
import { encodeRequest, FrameBatch, FrameDecoder, T, type Frame } from './pipe.js';
import type { PythonSpec } from './spec.js';
import { PythonLoadError } from './errors.js';

/** Size of the B frames a request body is cut into. */
const BODY_FRAME = 256 * 1024;
/** A body at most this long goes in one G frame with its environ. */
const WHOLE_REQUEST_MAX = 64 * 1024;
/** After the process exited, how long to wait for the end of its fd 4 (its last frames). */
const EXIT_DRAIN_MS = 1_000;

/**
 * The Python bridges ship in src/ (package.json "files" has src/): in ./bridge/ next to this file
 * when running from source, in ../../../../src/gateways/python/bridge/ from
 * dist/src/gateways/python/. Each imports wsgid_bridge_common.py from its own folder (Python puts
 * the script's folder first on sys.path), so the folder is found, chrooted or not, as the script is.
 */
export function bridgePath(file: 'wsgi_bridge.py' | 'asgi_bridge.py' = 'wsgi_bridge.py'): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, 'bridge', file), path.resolve(here, `../../../../src/gateways/python/bridge/${file}`)];
  for (const candidate of candidates) if (existsSync(candidate)) return candidate;
  throw new Error(`wsgid's Python bridge is missing (looked for ${candidates.join(', ')})`);
}

export interface ProcessEvents {
  frame(proc: PythonProcess, frame: Frame): void;
  batchEnd(proc: PythonProcess): void;
  /** `complete`: all of fd 4 was read (false when it stayed open EXIT_DRAIN_MS after the exit). */
  exit(proc: PythonProcess, description: string, complete: boolean): void;
}

export interface BridgeLaunch {
  /** Which bridge: names the app in the log and in a load error. */
  readonly kind: 'WSGI' | 'ASGI';
  /** The init frame's settings beside what to load (which the spec says). */
  readonly config: Record<string, unknown>;
  /** Frames (log frames from the start), batch ends, and the exit once the app is ready. */
  readonly events: ProcessEvents;
  /** The Python script to run; default wsgi_bridge.py. */
  readonly script?: string;
}

/**
 * Spawn a bridge and wait for the app to be ready, the handshake both Python gateways share.
 * Resolves on its ready frame; rejects with a PythonLoadError (Python's traceback) when the app
 * cannot be loaded, or with the end of its stderr when the process dies before either.
 */
export function launchBridge(spec: PythonSpec, logger: Logger, launch: BridgeLaunch): Promise<PythonProcess> {
  return new Promise<PythonProcess>((resolve, reject) => {
    let ready = false;
    const { events } = launch;
    const proc = new PythonProcess(
      spec,
      logger,
      {
        frame: (p, frame) => {
          if (ready || frame.type === T.log) return events.frame(p, frame);
          if (frame.type === T.ready) {
            ready = true;
            logger.info(`${launch.kind} app loaded`, { app: frame.payload.toString('utf8'), pid: p.child.pid });
            resolve(p);
          } else if (frame.type === T.loadFailed) {
            void p.stop(2000);
            reject(new PythonLoadError(spec.python, frame.payload.toString('utf8').trimEnd(), launch.kind));
          }
        },
        batchEnd: (p) => events.batchEnd(p),
        exit: (p, description, complete) => {
          if (ready) return events.exit(p, description, complete);
          const tail = p.stderrTail.trimEnd();
          reject(new Error(`the Python ${launch.kind} bridge (${spec.python}) ${description} before the app was ready` + (tail ? `:\n${tail}` : '')));
        },
      },
      launch.script,
    );
    const init = {
      entry: spec.entry ?? null,
      candidates: spec.candidates,
      django: spec.django ?? null,
      sysPath: spec.sysPath,
      cwd: spec.cwd,
      ...launch.config,
    };
    proc.send(T.init, 0, Buffer.from(JSON.stringify(init), 'utf8'));
  });
}

/** One bridge child: spawn, frame I/O, stdout/stderr passed on. */
export class PythonProcess {
  readonly child: ChildProcess;
  readonly startedAt = Date.now();
  exited = false;
  /** Last lines of stderr, for load errors that happen before the bridge can report them. */
  stderrTail = '';
  private readonly out: Writable;
  private readonly decoder = new FrameDecoder();
  /** Frames written during this event-loop turn leave in one write at setImmediate. */
  private readonly batch = new FrameBatch();
  private flushScheduled = false;
  private exitDescription: string | undefined;
  private outputEnded = false;

  constructor(
    readonly spec: PythonSpec,
    private readonly logger: Logger,
    private readonly events: ProcessEvents,
    /** The Python script to run (the ASGI gateway passes its asgi_bridge.py). */
    script: string = bridgePath(),
  ) {
    this.child = spawn(spec.python, [script], {
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
    // The app's print() and tracebacks go out on this worker's own stdout/stderr, line by line: the
    // terminal in the foreground, the master's capture (logs/app.log, tagged) in daemon mode.
    if (stdout) forwardLines(stdout, (line) => void process.stdout.write(line + '\n'));
    if (stderr) {
      forwardLines(stderr, (line) => {
        this.stderrTail = (this.stderrTail + line + '\n').slice(-4000);
        process.stderr.write(line + '\n');
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
    this.batch.push(type, id, payload);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.batch.empty) return;
    const chunks = this.batch.take();
    if (chunks.length === 1) {
      this.out.write(chunks[0]!);
      return;
    }
    this.out.cork();
    for (const chunk of chunks) this.out.write(chunk);
    this.out.uncork();
  };

  /**
   * A request: one G frame (environ and body) when the body is inline and small, else an environ
   * frame, the body cut in B frames, and the body end (one write with the turn's others).
   */
  sendRequest(id: number, environ: Buffer, body: Buffer | undefined): void {
    if (this.exited) return;
    if (body !== undefined && body.length <= WHOLE_REQUEST_MAX) {
      this.send(T.request, id, encodeRequest(environ, body));
      return;
    }
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
    this.flush();
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
