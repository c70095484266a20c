/**
 * One request on its way through the WSGI gateway, and its states. The transitions are declared
 * once, in TRANSITIONS; a transition that is not allowed does nothing and says so (`apply` returns
 * false), which is how the gateway guards "answer only once" and "ignore frames after an answer".
 *
 *   queued ──take──> preparing ──send──> sent ──head──> head-sent ──end──> ended
 *     ^                  │                 │
 *     └────requeue───────┴─────────────────┤   (its Python died before starting it)
 *                                          ├──fail──> failed     (we answered an error ourselves)
 *                                          └──cancel─> cancelled (the client left before the head)
 *
 * `fail` and `end` are also allowed from queued and preparing, `cancel` from queued. ended,
 * failed and cancelled are final for the reply; a failed or cancelled request may still be in
 * flight to Python, whose remaining frames for it are then dropped until its done frame.
 */
import type { GatewayRequest } from '../types.js';
import type { ReplyChannel } from '../../http/reply-channel.js';
import type { ResponseFraming } from '../python/response.js';

export type JobState =
  /** Waiting in the gateway's queue for a Python process and its turn. */
  | 'queued'
  /** Taken in flight; the upload file is being measured before the environ can be sent. */
  | 'preparing'
  /** The environ (and body) were handed to Python; no head yet. */
  | 'sent'
  /** The app's status line and headers went to the client; body frames pass through. */
  | 'head-sent'
  /** The response is complete (ended by the app's done, or closed). */
  | 'ended'
  /** We answered an error of our own (500 for a bad head, 502 after a crash, 503 when closing). */
  | 'failed'
  /** The client left before the head: the reply was aborted. */
  | 'cancelled';

export type JobEvent = 'take' | 'send' | 'requeue' | 'head' | 'end' | 'fail' | 'cancel';

const TRANSITIONS: Readonly<Record<JobEvent, { readonly from: readonly JobState[]; readonly to: JobState }>> = {
  take: { from: ['queued'], to: 'preparing' },
  send: { from: ['preparing'], to: 'sent' },
  requeue: { from: ['preparing', 'sent'], to: 'queued' },
  head: { from: ['sent'], to: 'head-sent' },
  end: { from: ['queued', 'preparing', 'sent', 'head-sent'], to: 'ended' },
  fail: { from: ['queued', 'preparing', 'sent'], to: 'failed' },
  cancel: { from: ['queued', 'sent'], to: 'cancelled' },
};

/** The state after `event`, or undefined when the event is not allowed in `state`. Pure. */
export function nextState(state: JobState, event: JobEvent): JobState | undefined {
  const transition = TRANSITIONS[event];
  return transition.from.includes(state) ? transition.to : undefined;
}

/** Is the request in Python's hands (its environ written), so that Python will answer for it? */
export function isSentToPython(state: JobState): boolean {
  return state !== 'queued' && state !== 'preparing';
}

export class Job {
  private current: JobState = 'queued';
  /** D bytes passed on and not yet acknowledged (sent at the end of the batch of frames). */
  ackNow = 0;
  /** D bytes held back until the reply drains (back-pressure towards Python). */
  pendingAck = 0;
  waitingDrain = false;
  /** The client left (the request was aborted). */
  aborted = false;
  /** Set with the head: how the body is framed (./response.ts). */
  framing: ResponseFraming | undefined;

  constructor(
    readonly id: number,
    readonly request: GatewayRequest,
    readonly reply: ReplyChannel,
    readonly resolve: () => void,
    readonly onAbort: () => void,
  ) {}

  get state(): JobState {
    return this.current;
  }

  /** Take the transition if it is allowed; false (and no change) if not. */
  apply(event: JobEvent): boolean {
    const next = nextState(this.current, event);
    if (next === undefined) return false;
    this.current = next;
    return true;
  }

  /** Would `event` be allowed now? */
  can(event: JobEvent): boolean {
    return nextState(this.current, event) !== undefined;
  }
}
