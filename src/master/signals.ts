/**
 * What each signal asks of the master: a table, as gunicorn's arbiter (its SIGNALS, queued, then
 * `handle_<name>`). The arbiter and --workers=0 each have one handler per action; what a stop or
 * a count change does to the workers is decided by the pool (pool.ts). docs/INTERNALS.md "Signals".
 */

/** stop: TERM graceful, INT/QUIT fast; reload: the rolling reload; resize: one worker more/less; reopen: the log files. */
export type SignalAction = 'stop' | 'reload' | 'resize' | 'reopen';

/** The master's signals, in the order their listeners are installed. */
export const MASTER_SIGNALS = {
  SIGTERM: 'stop',
  SIGINT: 'stop',
  SIGQUIT: 'stop',
  SIGHUP: 'reload',
  SIGTTIN: 'resize',
  SIGTTOU: 'resize',
  SIGUSR1: 'reopen',
} as const satisfies Readonly<Record<string, SignalAction>>;

export type MasterSignal = keyof typeof MASTER_SIGNALS;

/** The signals whose action is `A`. */
export type SignalsFor<A extends SignalAction> = { [S in MasterSignal]: (typeof MASTER_SIGNALS)[S] extends A ? S : never }[MasterSignal];

/**
 * --workers=0: one process, no workers to reload or count (HUP, TTIN and TTOU keep their default
 * action). A stop is taken once: a second stop signal meets the default action and ends it at once.
 */
export const STANDALONE_SIGNALS = {
  SIGTERM: 'stop',
  SIGINT: 'stop',
  SIGQUIT: 'stop',
  SIGUSR1: 'reopen',
} as const satisfies Readonly<Partial<Record<MasterSignal, SignalAction>>>;

export type StandaloneSignal = keyof typeof STANDALONE_SIGNALS;

/** A table's entries, typed (Object.entries loses the keys). */
export function signalEntries<T extends Readonly<Partial<Record<MasterSignal, SignalAction>>>>(table: T): Array<[keyof T & MasterSignal, T[keyof T]]> {
  return Object.entries(table) as Array<[keyof T & MasterSignal, T[keyof T]]>;
}
