/**
 * Test helper: a private network of "hosts" made of Linux network namespaces (root only).
 *
 *   const net = await createNetwork(['m2', 'w1', 'w2']);   // namespaces + a bridge in the first
 *   net.ns('w1')       // namespace name, for `ip netns exec`
 *   net.addr('m2')     // its address, e.g. 10.213.47.1
 *   await net.destroy();
 *
 * Layout: a bridge `br0` inside the FIRST host's namespace carries that host's address; every other
 * host gets a veth pair, one end in its own namespace (`eth0`, its address), the other enslaved to
 * the bridge. Every address lives inside the namespaces; the root namespace gets none, and the /24 is
 * picked at random in 10.0.0.0/8 (namespaces are isolated, so it cannot clash with the machine's
 * own networks). Loopback is brought up in each namespace. `destroy()` deletes the namespaces,
 * which removes their interfaces; it also runs at process exit if a test forgot it.
 */
import { execFile } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export interface Network {
  /** The /24 in use, e.g. '10.213.47.0/24'. */
  readonly subnet: string;
  ns(host: string): string;
  addr(host: string): string;
  /** `ip netns exec <ns>` as a command prefix (e.g. for startWsgid's `wrap`). */
  exec(host: string): string[];
  destroy(): Promise<void>;
}

function ip(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`ip ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

const created = new Set<string>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const ns of created) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        /* already gone */
      }
    }
  });
}

export async function createNetwork(hosts: readonly string[], tag = `wsgid${process.pid}`): Promise<Network> {
  if (!isRoot) throw new Error('createNetwork needs root (ip netns)');
  if (hosts.length < 1 || hosts.length > 200) throw new Error('createNetwork: 1..200 hosts');
  hookExit();
  const base = `10.${randomInt(16, 250)}.${randomInt(1, 250)}`;
  const names = new Map(hosts.map((h) => [h, `${tag}-${h}`]));
  const addrs = new Map(hosts.map((h, i) => [h, `${base}.${i + 1}`]));
  const nsOf = (h: string): string => {
    const n = names.get(h);
    if (n === undefined) throw new Error(`netns helper: unknown host ${h}; known: ${hosts.join(', ')}`);
    return n;
  };
  const network: Network = {
    subnet: `${base}.0/24`,
    ns: nsOf,
    addr(h) {
      nsOf(h);
      return addrs.get(h)!;
    },
    exec: (h) => ['ip', 'netns', 'exec', nsOf(h)],
    async destroy() {
      for (const ns of names.values()) {
        if (!created.has(ns)) continue;
        try {
          await ip(['netns', 'del', ns]);
        } catch {
          /* already gone */
        }
        created.delete(ns);
      }
    },
  };
  try {
    for (const ns of names.values()) {
      await ip(['netns', 'add', ns]);
      created.add(ns);
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    const hub = nsOf(hosts[0]!);
    await ip(['-n', hub, 'link', 'add', 'br0', 'type', 'bridge']);
    await ip(['-n', hub, 'addr', 'add', `${addrs.get(hosts[0]!)}/24`, 'dev', 'br0']);
    await ip(['-n', hub, 'link', 'set', 'br0', 'up']);
    for (let i = 1; i < hosts.length; i++) {
      const h = hosts[i]!;
      const port = `vp${i}`;
      await ip(['link', 'add', port, 'netns', hub, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', nsOf(h)]);
      await ip(['-n', hub, 'link', 'set', port, 'master', 'br0']);
      await ip(['-n', hub, 'link', 'set', port, 'up']);
      await ip(['-n', nsOf(h), 'addr', 'add', `${addrs.get(h)}/24`, 'dev', 'eth0']);
      await ip(['-n', nsOf(h), 'link', 'set', 'eth0', 'up']);
    }
  } catch (error) {
    await network.destroy();
    throw error;
  }
  return network;
}
