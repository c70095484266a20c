/**
 * What wsgid knows about its connections to mongrel2, decided from ZeroMQ socket events (pure: the
 * events and the clock are handed in; ./endpoint-monitor.ts feeds it from real sockets).
 *
 * Each `--recv` endpoint is a PULL connected to a mongrel2 handler's send_spec (a PUSH socket), each
 * `--send` endpoint an XPUB connected to its recv_spec (a SUB socket). What ZeroMQ reports, as
 * observed with mongrel2 1.12 and zeromq.js 6 (test/integration/endpoints.test.ts):
 * - nobody listening: `connect:delay`, then `connect:retry` again and again; never `connect`;
 * - the right peer: `connect` (TCP is up), then `handshake` (ZMTP accepted our socket type); an XPUB
 *   then receives mongrel2's subscription;
 * - a peer of the wrong type (a PULL at a SUB, a PUB at a PUSH: `--recv` and `--send` swapped) or
 *   not ZeroMQ at all: `connect`, then `disconnect` with no `handshake` in between, and libzmq does
 *   not try again (a protocol error ends that connection for good); builds with the draft events
 *   report `handshake:error:*` instead;
 * - mongrel2 stopping: `disconnect`, then `connect:retry` until it is back (`connect`, `handshake`).
 */

export type EndpointRole = 'recv' | 'send';

/**
 * `connecting`: no connection yet (nobody listening, or not tried yet); `handshaking`: TCP is up,
 * the ZMTP handshake not done; `connected`: handshake done; `disconnected`: was connected, lost it
 * (ZeroMQ keeps retrying); `refused`: the peer broke off the handshake (wrong socket type: ZeroMQ
 * does not retry). Treat as an open set: new states may be added.
 */
export type EndpointState = 'connecting' | 'handshaking' | 'connected' | 'disconnected' | 'refused';

/** The ZeroMQ socket events this module reads (zeromq.js `socket.events` names). */
export type EndpointEvent =
  | { type: 'connect:delay' | 'connect:retry' | 'connect' | 'handshake' | 'disconnect' | 'close' }
  | { type: 'handshake:error:protocol' | 'handshake:error:auth' | 'handshake:error:other'; code?: string; message?: string }
  /** An XPUB saw mongrel2 subscribe. */
  | { type: 'subscribed' };

export interface EndpointInfo {
  role: EndpointRole;
  /** Index of the mongrel2 server (recv[i] pairs with send[i]). */
  server: number;
  address: string;
  state: EndpointState;
  /** When the state last changed (ms). */
  since: number;
  /** Completed handshakes (1 after the first connection; more after reconnects). */
  connects: number;
  /** Connections lost after a handshake. */
  disconnects: number;
  /**
   * send only: mongrel2's subscription has arrived (replies can be delivered). Kept across
   * reconnections: a SUB renews its subscriptions on every new connection as part of ZeroMQ's
   * protocol (and zeromq.js may report the renewal late, only at the XPUB's next activity).
   */
  subscribed?: boolean;
  /** What is wrong, in words, when state is `refused` (or the handshake error's code). */
  problem?: string;
  /** Whether the "not connected after a while" warning was given. */
  warned: boolean;
}

export interface EndpointNote {
  level: 'info' | 'warn' | 'error';
  message: string;
  fields: Record<string, unknown>;
}

const OWN_SOCKET: Record<EndpointRole, string> = { recv: 'PULL', send: 'PUB' };
const PEER: Record<EndpointRole, string> = { recv: "a handler's send_spec (PUSH)", send: "a handler's recv_spec (SUB)" };
const FLAG: Record<EndpointRole, string> = { recv: '--recv', send: '--send' };

/** The connection state of every configured mongrel2 endpoint, in the order recv…, send…. */
export class EndpointBook {
  readonly endpoints: EndpointInfo[] = [];

  constructor(recv: readonly string[], send: readonly string[], now: number) {
    recv.forEach((address, server) => this.endpoints.push(fresh('recv', server, address, now)));
    send.forEach((address, server) => this.endpoints.push({ ...fresh('send', server, address, now), subscribed: false }));
  }

  get(role: EndpointRole, server: number): EndpointInfo | undefined {
    return this.endpoints.find((e) => e.role === role && e.server === server);
  }

  /** Every endpoint has completed its handshake (and every send endpoint has mongrel2's subscription). */
  get allConnected(): boolean {
    return this.endpoints.every((e) => e.state === 'connected' && e.subscribed !== false);
  }

  /** Feed one event; returns what deserves a log line. */
  event(role: EndpointRole, server: number, event: EndpointEvent, now: number): EndpointNote[] {
    const e = this.get(role, server);
    if (e === undefined) return [];
    const fields = { endpoint: e.address, role: FLAG[role], server };
    const set = (state: EndpointState): void => {
      if (e.state !== state) {
        e.state = state;
        e.since = now;
      }
    };
    switch (event.type) {
      case 'connect:delay':
      case 'connect:retry':
      case 'close':
        // Attempts: state stays connecting, or disconnected after a loss. A refused endpoint is not
        // retried by ZeroMQ; should a retry come after all, it is still refused until it shakes hands.
        return [];
      case 'connect':
        if (e.state !== 'refused') set('handshaking');
        return [];
      case 'handshake': {
        const again = e.connects > 0 || e.state === 'refused';
        set('connected');
        e.problem = undefined;
        e.connects++;
        if (again) return [{ level: 'info', message: 'mongrel2 endpoint reconnected', fields }];
        return e.warned ? [{ level: 'info', message: 'mongrel2 endpoint connected', fields }] : [];
      }
      case 'disconnect':
        if (e.state === 'connected') {
          set('disconnected');
          e.disconnects++;
          return [{ level: 'warn', message: 'mongrel2 endpoint disconnected (ZeroMQ keeps reconnecting)', fields }];
        }
        if (e.state === 'handshaking') return this.refuse(e, 'the peer closed the connection during the ZeroMQ handshake', now);
        return [];
      case 'handshake:error:protocol':
      case 'handshake:error:auth':
      case 'handshake:error:other':
        return this.refuse(e, `ZeroMQ handshake failed (${event.code ?? event.type}${event.message ? `: ${event.message}` : ''})`, now);
      case 'subscribed':
        if (e.role === 'send') e.subscribed = true;
        return [];
    }
  }

  private refuse(e: EndpointInfo, why: string, now: number): EndpointNote[] {
    if (e.state === 'refused') return [];
    e.state = 'refused';
    e.since = now;
    e.problem = `${why}: it is not ${PEER[e.role]}, which a ${OWN_SOCKET[e.role]} needs`;
    const notes: EndpointNote[] = [
      {
        level: 'error',
        message: `mongrel2 endpoint refused our ${OWN_SOCKET[e.role]} socket`,
        fields: { endpoint: e.address, role: FLAG[e.role], server: e.server, problem: e.problem },
      },
    ];
    const swapped = this.swappedPair(e.server);
    if (swapped) notes.push({ level: 'error', message: swapped, fields: { server: e.server } });
    return notes;
  }

  /** The diagnosis when both endpoints of server `server` refused us: given the wrong way round. */
  swappedPair(server: number): string | undefined {
    const recv = this.get('recv', server);
    const send = this.get('send', server);
    if (recv?.state !== 'refused' || send?.state !== 'refused') return undefined;
    return (
      `--recv and --send look swapped: --recv ${recv.address} is not a send_spec and --send ${send.address} is not a recv_spec; ` +
      `try --recv=${send.address} --send=${recv.address}`
    );
  }

  /**
   * Endpoints still not connected `graceMs` after `startedAt` get one warning each (the CLI and the
   * log show it); the next handshake logs "connected".
   */
  overdue(now: number, startedAt: number, graceMs: number): EndpointNote[] {
    if (now - startedAt < graceMs) return [];
    const notes: EndpointNote[] = [];
    for (const e of this.endpoints) {
      if (e.warned || (e.state === 'connected' && e.subscribed !== false)) continue;
      e.warned = true;
      notes.push({ level: 'warn', message: lateMessage(e, graceMs), fields: { endpoint: e.address, role: FLAG[e.role], server: e.server, state: e.state } });
    }
    return notes;
  }

  /** One line per endpoint that is not fully connected (for `wsgid start` and `status`). */
  problems(): string[] {
    const lines: string[] = [];
    for (const e of this.endpoints) {
      if (e.state === 'connected' && e.subscribed !== false) continue;
      lines.push(describeProblem(e));
    }
    const swapped = new Set<number>();
    for (const e of this.endpoints) {
      const text = this.swappedPair(e.server);
      if (text && !swapped.has(e.server)) {
        swapped.add(e.server);
        lines.push(text);
      }
    }
    return lines;
  }
}

function fresh(role: EndpointRole, server: number, address: string, now: number): EndpointInfo {
  return { role, server, address, state: 'connecting', since: now, connects: 0, disconnects: 0, warned: false };
}

function lateMessage(e: EndpointInfo, graceMs: number): string {
  return `mongrel2 endpoint not connected after ${Math.round(graceMs / 1000)} s: ${describeProblem(e)}`;
}

/** A sentence on one endpoint that is not (fully) connected. */
export function describeProblem(e: EndpointInfo): string {
  const name = `${FLAG[e.role]} ${e.address}`;
  switch (e.state) {
    case 'refused':
      return `${name}: ${e.problem ?? 'refused'}`;
    case 'connecting':
      return `${name}: nobody accepts connections there (is mongrel2 running, with ${PEER[e.role]} at this address?)`;
    case 'handshaking':
      return `${name}: connected, but the ZeroMQ handshake has not finished (is it a ZeroMQ socket?)`;
    case 'disconnected':
      return `${name}: connection lost (mongrel2 stopped?); reconnecting`;
    case 'connected':
      return e.subscribed === false ? `${name}: connected, but mongrel2 has not subscribed yet (replies wait)` : `${name}: connected`;
  }
}
