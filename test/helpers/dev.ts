/**
 * Test helper for `wsgid dev` (dev.test.ts, recipes.test.ts): start it on a free port and wait for
 * the URL it prints, wait for an answer after an edit, read the private mongrel2 it names.
 */
import assert from 'node:assert/strict';
import { freePort } from './mongrel2.js';
import { request } from './http.js';
import { startWsgid, type WsgidProcess } from './wsgid.js';
import { waitFor } from './processes.js';

/** GET url until its body is `expected` (a hang bound, not a speed test). */
export async function untilAnswer(url: string, expected: string, wsgid: WsgidProcess): Promise<void> {
  let last = '';
  try {
    await waitFor(`the answer ${JSON.stringify(expected)}`, async () => {
      const response = await request(url, { timeoutMs: 10_000 }).catch((error: Error) => ({ text: `(${error.message})` }));
      last = response.text;
      return last === expected;
    }, 60_000);
  } catch (error) {
    throw new Error(`${(error as Error).message}; last answer ${JSON.stringify(last)}\n--- wsgid dev output ---\n${wsgid.output()}`);
  }
}

/** The private mongrel2's pid and folder, from the line `wsgid dev` prints. */
export function mongrel2Of(output: string): { pid: number; dir: string } {
  const m = /mongrel2 pid (\d+) in (\S+)\)/.exec(output);
  assert.ok(m, output);
  return { pid: Number(m[1]), dir: m[2]! };
}

export interface DevServer {
  readonly wsgid: WsgidProcess;
  /** The URL `wsgid dev` printed (http://127.0.0.1:PORT, no trailing slash). */
  readonly url: string;
}

/**
 * `wsgid dev ...args --port=<free>`, returned once it printed where it serves and `readyPath` at
 * that URL answers (any status but a 502/503 from before the app is up).
 */
export async function startDev(args: string[], options: { readyPath?: string; readyTimeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<DevServer> {
  const port = await freePort();
  const wsgid = await startWsgid(['dev', ...args, `--port=${port}`], {
    readyUrl: `http://127.0.0.1:${port}${options.readyPath ?? '/'}`,
    readyTimeoutMs: options.readyTimeoutMs ?? 60_000,
    env: options.env,
  });
  const line = /wsgid dev: serving \S+ at (http:\/\/[^/\s]+)\//;
  await wsgid.waitForOutput(line, 30_000).catch(() => undefined);
  const printed = line.exec(wsgid.output());
  if (!printed) {
    await wsgid.stop('SIGKILL');
    assert.fail(`wsgid dev did not print its URL:\n${wsgid.output()}`);
  }
  assert.equal(printed[1], `http://127.0.0.1:${port}`, 'it serves on the port asked for');
  return { wsgid, url: printed[1]! };
}
