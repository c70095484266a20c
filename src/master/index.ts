/** The master (supervisor + dispatcher). See ./arbiter.ts and docs/INTERNALS.md. */
export { runMaster, Arbiter, WORKER_ENTRY, MAX_BOOT_FAILURES } from './arbiter.js';
export type { MasterHooks, MasterStatusFile } from './arbiter.js';
