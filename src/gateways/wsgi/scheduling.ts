/**
 * The WSGI gateway's scheduling rules, pure (the gateway in ./index.ts applies them):
 * - threads and pipelining: up to `threads` (--threads) requests run at once in one Python
 *   process, and `depth - 1` (--wsgi-pipeline) more are sent ahead of their turn (so it goes from
 *   one request to the next without a round trip); only small inline bodies go ahead, behind
 *   requests fully sent; an upload or a large body goes only when a thread is free for it;
 * - after a crash: which in-flight requests Python never started (retried on the next process)
 *   and which it may have been running (answered). Restarts are ../python/supervisor.ts's.
 */
import type { GatewayRequest } from '../types.js';
import { isSentToPython, type JobState } from './job.js';

/** Requests in flight to one Python process at most by default (--wsgi-pipeline). */
export const PIPELINE = 8;
/** Only requests with an inline body at most this long are sent ahead of their turn. */
export const PIPELINE_BODY_MAX = 64 * 1024;

/**
 * May `next` be sent to Python now? `inFlight`: the states of the requests already in flight, in
 * order. Python starts them in that order as threads come free, so while fewer than `threads` are
 * in flight every one of them runs and a thread is free for `next`.
 */
export function maySend(
  next: Pick<GatewayRequest, 'bodyFile' | 'message'>,
  inFlight: readonly JobState[],
  depth = PIPELINE,
  threads = 1,
): boolean {
  if (inFlight.length === 0) return true;
  if (!isSentToPython(inFlight[inFlight.length - 1]!)) return false; // behind an upload being measured
  if (inFlight.length < threads) return true;
  const small = next.bodyFile === undefined && next.message.body.length <= PIPELINE_BODY_MAX;
  return small && inFlight.length < threads + depth - 1;
}

/**
 * The requests in flight when Python died, in order. Python starts them in that order, so only the
 * first `threads` may have been running: those are answered (502, or closed if their head was
 * out); the rest never started. Those go back to the front of the queue when all of the process's
 * output was read and the gateway is not closing; otherwise they are answered (502, or 503 when
 * closing), never run twice. Cancelled ones were answered already.
 */
export function afterCrash<J extends { readonly state: JobState }>(
  inFlight: readonly J[],
  outputComplete: boolean,
  closing: boolean,
  threads = 1,
): { readonly running: J[]; readonly retry: J[]; readonly answer: J[] } {
  const live = (job: J): boolean => job.state !== 'cancelled';
  const running = inFlight.slice(0, threads).filter(live);
  const waiting = inFlight.slice(threads).filter(live);
  return outputComplete && !closing ? { running, retry: waiting, answer: [] } : { running, retry: [], answer: waiting };
}
