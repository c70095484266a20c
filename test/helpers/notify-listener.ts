/**
 * Test helper: a real NOTIFY_SOCKET. A python3 process binds a unix datagram socket (Node cannot)
 * — a path, or `@name` for an abstract one — and prints every datagram it receives, stamped with
 * its own CLOCK_MONOTONIC (the clock systemd ≥ 253 compares MONOTONIC_USEC with).
 *
 *   const listener = await NotifyListener.start(path.join(dir, 'notify.sock'), dir);
 *   ... run wsgid with NOTIFY_SOCKET=listener.socket ...
 *   const ready = await listener.next('READY');       // waits; ready.datagram.fields.get('STATUS')
 *   listener.stop();
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { waitFor } from './processes.js';

const LISTENER = `
import json, socket, sys, time
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(('\\0' + path[1:]) if path.startswith('@') else path)
print(json.dumps({'bound': True}), flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps({'at': time.monotonic_ns() // 1000, 'message': data.decode()}), flush=True)
`;

export interface Datagram {
  /** The listener's CLOCK_MONOTONIC at receipt, µs. */
  at: number;
  fields: Map<string, string>;
  raw: string;
}

/** A python3 NOTIFY_SOCKET listener; `messages` grows as datagrams arrive. */
export class NotifyListener {
  readonly messages: Datagram[] = [];
  private constructor(readonly socket: string, private readonly child: ChildProcess) {}

  static async start(socket: string, dir: string): Promise<NotifyListener> {
    const script = path.join(dir, 'listener.py');
    await writeFile(script, LISTENER);
    const child = spawn('/usr/bin/python3', [script, socket], { stdio: ['ignore', 'pipe', 'inherit'] });
    const listener = new NotifyListener(socket, child);
    process.once('exit', () => child.kill('SIGKILL'));
    let buffer = '';
    let bound = false;
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const line = JSON.parse(buffer.slice(0, nl)) as { bound?: boolean; at?: number; message?: string };
        buffer = buffer.slice(nl + 1);
        if (line.bound) bound = true;
        else {
          const fields = new Map(line.message!.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as [string, string]));
          listener.messages.push({ at: line.at!, fields, raw: line.message! });
        }
      }
    });
    await waitFor('the listener to bind', async () => bound || (child.exitCode !== null ? assert.fail('listener exited') : false), 10_000);
    return listener;
  }

  /** The first message from index `from` on that has `key` (optionally = value). */
  async next(key: string, from = 0, value?: string): Promise<{ index: number; datagram: Datagram }> {
    return waitFor(`${key}${value ? '=' + value : ''} on NOTIFY_SOCKET (got: ${JSON.stringify(this.messages.slice(from).map((m) => m.raw))})`, async () => {
      for (let i = from; i < this.messages.length; i++) {
        const v = this.messages[i]!.fields.get(key);
        if (v !== undefined && (value === undefined || v === value)) return { index: i, datagram: this.messages[i]! };
      }
      return undefined;
    });
  }

  keys(): string[] {
    return this.messages.map((m) => [...m.fields.keys()].filter((k) => k !== 'STATUS' && k !== 'MONOTONIC_USEC').join('+') || 'STATUS');
  }

  stop(): void {
    this.child.kill('SIGKILL');
  }
}

