/**
 * The resolved settings of one wsgid instance (command line over the environment over wsgid.json
 * over defaults), as the rest of wsgid consumes them. Not written by hand: the type is inferred
 * from the option table (./options.ts), each setting of its entry's kind or `parse` result
 * (sizes in bytes, `metrics` a {host, port}, `logFormat` 'text' | 'json'); an option without a
 * default may be undefined.
 */
import type { CommandValues, OptionValues } from './options.js';

export type Settings = Omit<OptionValues, keyof CommandValues>;
