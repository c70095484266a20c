/**
 * What apps may import from 'wsgid' (package.json "exports"). Keep it small: each export here is
 * a public API.
 */
export { broadcast, type BroadcastOptions } from './broadcast.js';
