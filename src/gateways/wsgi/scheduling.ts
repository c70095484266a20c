/**
 * The WSGI gateway's scheduling rules, pure (the gateway in ./index.ts applies them):
 * - pipelining: up to `depth` (--wsgi-pipeline) requests in flight to one Python process (the one it runs and those
 *   sent ahead, so it goes from one request to the next without a round trip); only small inline
 *   bodies go ahead, behind requests fully sent; uploads and large bodies go alone;
 * - after a crash: which in-flight requests Python never started (retried on the next process)
 *   and which one it was running (answered);
 * - restarts: exponential backoff while the process keeps dying young.
 */
import type { GatewayRequest } from '../types.js';
import { isSentToPython, type JobState } from './job.js';

/** Requests in flight to one Python process at most by default (--wsgi-pipeline). */
export const PIPELINE = 8;
/** Only requests with an inline body at most this long are sent ahead of their turn. */
export const PIPELINE_BODY_MAX = 64 * 1024;
export const MAX_RESTART_DELAY = 10_000;
/** A Python process that dies sooner than this after starting counts as a crash loop. */
export const QUICK_CRASH_MS = 2_000;

/**
 * May `next` be sent to Python now? `inFlight`: the states of the requests already in flight, in
 * order (the first is the one Python runs).
 */
export function maySend(next: Pick<GatewayRequest, 'bodyFile' | 'message'>, inFlight: readonly JobState[], depth = PIPELINE): boolean {
  if (inFlight.length === 0) return true;
  const small = next.bodyFile === undefined && next.message.body.length <= PIPELINE_BODY_MAX;
  const last = inFlight[inFlight.length - 1]!;
  return small && isSentToPython(last) && inFlight.length < depth;
}

/** Delay before starting a new Python process after `crashes` quick deaths in a row. */
export function restartDelay(crashes: number): number {
  return crashes === 0 ? 0 : Math.min(100 * 2 ** (crashes - 1), MAX_RESTART_DELAY);
}

/** The count of quick deaths in a row after a process that lived `livedMs` died. */
export function crashesAfterExit(crashes: number, livedMs: number): number {
  return livedMs < QUICK_CRASH_MS ? crashes + 1 : 0;
}

/**
 * The requests in flight when Python died, in order: the first is the one it was running (answered
 * 502, or closed if its head was out); the rest never started. Those go back to the front of the
 * queue when all of the process's output was read and the gateway is not closing; otherwise they
 * are answered (502, or 503 when closing), never run twice. Cancelled ones were answered already.
 */
export function afterCrash<J extends { readonly state: JobState }>(
  inFlight: readonly J[],
  outputComplete: boolean,
  closing: boolean,
): { readonly running: J | undefined; readonly retry: J[]; readonly answer: J[] } {
  const [first, ...notStarted] = inFlight;
  const waiting = notStarted.filter((job) => job.state !== 'cancelled');
  const running = first !== undefined && first.state !== 'cancelled' ? first : undefined;
  return outputComplete && !closing ? { running, retry: waiting, answer: [] } : { running, retry: [], answer: waiting };
}
