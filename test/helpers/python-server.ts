/**
 * A Python HTTP server run as a reference (gunicorn, uvicorn from Debian): started on a free port,
 * waited for until it accepts connections, stopped with SIGTERM. A server that exits or never
 * listens fails the start with its stderr, and is killed rather than left behind.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { freePort } from './mongrel2.js';

export interface PythonServer {
  port: number;
  stop(): Promise<void>;
}

/** `python3 -m MODULE ...args(port)` in `cwd`. */
export async function startPythonServer(module: string, args: (port: number) => string[], cwd: string): Promise<PythonServer> {
  const port = await freePort();
  const child = spawn('/usr/bin/python3', ['-m', module, ...args(port)], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => (output += text));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`${module} exited: ${output}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (open) break;
    if (i > 600) {
      child.kill('SIGKILL');
      throw new Error(`${module} did not listen: ${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
