/**
 * The bench baseline: the least a mongrel2 handler can do. PULL requests, read the sender and
 * connection id, skip control messages (`@*`: disconnects, credits), PUB a fixed minimal
 * HTTP/1.1 response. No header parsing, no close handling (wrk keeps connections alive).
 *
 *   node dist/bench/bare-handler.js --recv=tcp://127.0.0.1:9997 --send=tcp://127.0.0.1:9996
 *
 * Prints "ready" on stdout once both sockets are connecting; exits on SIGTERM/SIGINT.
 */
import { Pull, Publisher } from 'zeromq';

function arg(name: string): string {
  const prefix = `--${name}=`;
  const found = process.argv.find((a) => a.startsWith(prefix));
  if (!found) {
    process.stderr.write(`usage: bare-handler --recv=ENDPOINT --send=ENDPOINT (missing --${name})\n`);
    process.exit(2);
  }
  return found.slice(prefix.length);
}

const BODY = 'Hello, world!';
const RESPONSE = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`);
const SPACE = 0x20;

async function main(): Promise<void> {
  const pull = new Pull();
  const pub = new Publisher({ sendHighWaterMark: 0 });
  pull.connect(arg('recv'));
  pub.connect(arg('send'));

  // zeromq.js allows one send() in flight per socket: queue replies and drain them in order.
  const queue: Buffer[] = [];
  let draining = false;
  const drain = async (): Promise<void> => {
    draining = true;
    try {
      while (queue.length > 0) await pub.send(queue.shift()!);
    } finally {
      draining = false;
    }
  };

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    pull.close();
    setTimeout(() => {
      pub.close();
      process.exit(0);
    }, 50);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdout.write('ready\n');

  try {
    for await (const [msg] of pull) {
      if (!msg) continue;
      const s1 = msg.indexOf(SPACE);
      const s2 = msg.indexOf(SPACE, s1 + 1);
      // path starts at s2 + 1: control messages are "@*"
      if (msg[s2 + 1] === 0x40 /* @ */) continue;
      const sender = msg.subarray(0, s1);
      const conn = msg.subarray(s1 + 1, s2);
      const head = Buffer.from(` ${conn.length}:`);
      queue.push(Buffer.concat([sender, head, conn, Buffer.from(', '), RESPONSE]));
      if (!draining) void drain().catch((err: unknown) => process.stderr.write(`send failed: ${String(err)}\n`));
    }
  } catch (err) {
    if (!stopping) throw err;
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bare-handler: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
