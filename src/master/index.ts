/** The master (supervisor + dispatcher). See ./arbiter.ts, ./pool.ts and docs/INTERNALS.md. */
export { runMaster, Arbiter, WORKER_ENTRY } from './arbiter.js';
export { MAX_BOOT_FAILURES } from './pool.js';
export type { MasterHooks, ReadyInfo, ReloadedSettings } from './arbiter.js';
export type { MasterStatusFile } from './status.js';
