/**
 * Gateway kind → factory, imported lazily so a worker loads only the gateway it uses
 * (the WSGI gateway never costs a JavaScript app anything, and vice versa).
 */
import type { GatewayFactory } from './types.js';

const GATEWAYS: Record<string, () => Promise<{ create: GatewayFactory }>> = {
  fetch: () => import('./fetch/index.js'),
  node: () => import('./node/index.js'),
  wsgi: () => import('./wsgi/index.js'),
};

export function gatewayKinds(): string[] {
  return Object.keys(GATEWAYS);
}

export async function gatewayFactory(kind: string): Promise<GatewayFactory> {
  const load = GATEWAYS[kind];
  if (!load) throw new Error(`unknown gateway kind "${kind}" (known: ${gatewayKinds().join(', ')})`);
  return (await load()).create;
}
