/**
 * The worker's Broadcaster (src/broadcast.ts): bytes for many connections of one mongrel2 server.
 * A connection whose response this worker is writing gets them in order with that response (and
 * within its credit); one with download credits through its flow; the rest in mongrel2's multi-id
 * replies. `routeBroadcast` is that rule, pure and unit-tested.
 */
import { encodeBroadcast } from '../protocol/index.js';
import { chunkPrefix, CHUNK_SUFFIX } from '../http/head.js';
import type { Broadcaster } from '../broadcast.js';
import type { ReplySocket } from '../transport/reply-socket.js';
import type { ConnectionFlow } from './credit-queue.js';
import type { ConnectionReply } from './reply.js';
import { connectionKey } from './connections.js';

export type BroadcastRoute = 'response' | 'flow' | 'direct';

/** `reply`: the response being served on the connection, if any; `hasFlow`: it has download credits. */
export function routeBroadcast(reply: { readonly ended: boolean; readonly closed: boolean } | undefined, hasFlow: boolean): BroadcastRoute {
  if (reply !== undefined && !reply.ended && !reply.closed) return 'response';
  return hasFlow ? 'flow' : 'direct';
}

export interface BroadcastTargets {
  readonly sockets: readonly ReplySocket[];
  /** The sender (send_ident) last seen from this server: multi-id replies are addressed with it. */
  sender(server: number): string | undefined;
  /** The response being served on a connection (by connectionKey). */
  reply(key: number): ConnectionReply | undefined;
  flow(key: number): ConnectionFlow | undefined;
}

export function createBroadcaster(targets: BroadcastTargets): Broadcaster {
  const { sockets } = targets;
  return {
    broadcast(connIds, data, broadcastOptions = {}) {
      const server = broadcastOptions.server ?? 0;
      const socket = sockets[server];
      if (socket === undefined) throw new RangeError(`broadcast: no mongrel2 server ${server} (there are ${sockets.length})`);
      let bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      if (bytes.length === 0 || connIds.length === 0) return 0;
      if (broadcastOptions.chunked) {
        bytes = Buffer.concat([Buffer.from(chunkPrefix(bytes.length), 'latin1'), bytes, Buffer.from(CHUNK_SUFFIX, 'latin1')]);
      }
      const direct: number[] = [];
      for (const connId of connIds) {
        const key = connectionKey(server, connId);
        const reply = targets.reply(key);
        const flow = targets.flow(key);
        const route = routeBroadcast(reply, flow !== undefined);
        if (route === 'response' && reply !== undefined) reply.write(bytes);
        else if (route === 'flow' && flow !== undefined) flow.send(bytes);
        else direct.push(connId);
      }
      if (direct.length > 0) {
        const sender = targets.sender(server);
        if (sender === undefined) throw new Error('broadcast: no request seen from this mongrel2 server yet (no sender id)');
        for (const frame of encodeBroadcast(sender, direct, bytes)) socket.send(frame);
      }
      return connIds.length;
    },
  };
}
