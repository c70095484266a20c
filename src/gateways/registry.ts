/**
 * Gateway kind → factory, imported lazily so a worker loads only the gateway it uses
 * (the WSGI gateway never costs a JavaScript app anything, and vice versa).
 *
 * A chrooted worker cannot import wsgid's own files any more (Node's ESM resolver stats the file
 * even for a module it has loaded), so it calls preloadGateways() before entering the chroot and
 * gatewayFactory() is then served from memory.
 */
import type { GatewayFactory } from './types.js';

type GatewayModule = { create: GatewayFactory };

const GATEWAYS: Record<string, () => Promise<GatewayModule>> = {
  fetch: () => import('./fetch/index.js'),
  node: () => import('./node/index.js'),
  wsgi: () => import('./wsgi/index.js'),
  asgi: () => import('./asgi/index.js'),
};
const loaded = new Map<string, GatewayModule>();

export function gatewayKinds(): string[] {
  return Object.keys(GATEWAYS);
}

export async function gatewayFactory(kind: string): Promise<GatewayFactory> {
  const cached = loaded.get(kind);
  if (cached) return cached.create;
  const load = GATEWAYS[kind];
  if (!load) throw new Error(`unknown gateway kind "${kind}" (known: ${gatewayKinds().join(', ')})`);
  const module = await load();
  loaded.set(kind, module);
  return module.create;
}

/** Import every gateway now (before a chroot makes wsgid's files unreachable). */
export async function preloadGateways(): Promise<void> {
  await Promise.all(gatewayKinds().map((kind) => gatewayFactory(kind)));
}
