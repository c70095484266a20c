/** Test helper: stop what a suite started for one app (wsgid, then its mongrel2) and remove the folder. */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import type { Mongrel2Handle } from './mongrel2.js';
import type { WsgidProcess } from './wsgid.js';

export interface Served {
  m2: Mongrel2Handle;
  wsgid: WsgidProcess;
  dir: string;
}

/** Stop wsgid and mongrel2, remove the app folder; wsgid must have exited 0. Nothing when `s` is undefined. */
export async function stopServed(s: Served | undefined): Promise<void> {
  if (!s) return;
  const code = await s.wsgid.stop();
  await s.m2.stop();
  await rm(s.dir, { recursive: true, force: true });
  assert.equal(code, 0, s.wsgid.output());
}
