/**
 * One scope in flight through the ASGI gateway: an HTTP request, or a WebSocket connection, with
 * what the gateway must remember of it (its reply, the framing of its body, the acknowledgements
 * it owes the bridge, and for a WebSocket the session and the close handshake).
 *
 *   preparing ──send──> sent ──head──> head-sent ──(Z)──> done        (http, refused handshake)
 *                         └──accept──> open ──(Z / close / gone)──> done   (websocket)
 *
 * No I/O here: the gateway (./index.ts) applies the states.
 */
import type { GatewayRequest, WebSocketSession } from '../types.js';
import type { ReplyChannel } from '../../http/reply-channel.js';
import type { ResponseFraming } from '../python/response.js';

export type ExchangeState =
  /** Taken; an upload file is being measured before the scope goes out. */
  | 'preparing'
  /** The scope went to Python; nothing came back yet. */
  | 'sent'
  /** The response head went to the client; body frames pass through. */
  | 'head-sent'
  /** The WebSocket was accepted (101 sent); frames flow both ways. */
  | 'open'
  /** Answered, ended, failed or abandoned: nothing more goes to the client for it. */
  | 'done';

export class Exchange {
  state: ExchangeState = 'preparing';
  /** D/W bytes passed on and not yet acknowledged (sent at the end of the batch of frames). */
  ackNow = 0;
  /** Bytes held back until the reply (or session) drains: back-pressure towards Python. */
  pendingAck = 0;
  waitingDrain = false;
  framing: ResponseFraming | undefined;
  /** WebSocket: we sent a close frame (ours or the echo of the client's). */
  closeSent = false;
  closeTimer: NodeJS.Timeout | undefined;
  /** The request's promise was settled (handle/upgrade returned to the worker). */
  settled = false;

  constructor(
    readonly id: number,
    readonly request: GatewayRequest,
    readonly reply: ReplyChannel,
    private readonly resolveFn: () => void,
    /** The WebSocket session when the scope is a websocket one. */
    readonly session?: WebSocketSession,
    /** WebSocket: the reply that carries the 101 (`reply` closes the connection after a refusal). */
    readonly upgradeReply?: ReplyChannel,
  ) {}

  get websocket(): boolean {
    return this.session !== undefined;
  }

  /** Settle the worker's promise for this request once. */
  resolve(): void {
    if (this.settled) return;
    this.settled = true;
    this.resolveFn();
  }
}
