/**
 * Telling systemd (`Type=notify`) what the master does: the effects around ./notify-plan.ts.
 *
 * Sending: Node has no unix datagram sockets, so the message goes through wsgid's native addon
 * (native/notify.c: socket(AF_UNIX, SOCK_DGRAM) + sendto, abstract `@names` too). Without the addon
 * (not built at install), `systemd-notify --pid=<master pid> KEY=VALUE…` is run instead: as root it
 * sends with the master's pid, which systemd accepts from the main process (NotifyAccess=main);
 * not as root it sends with its own pid, which systemd accepts only with NotifyAccess=all (the unit
 * `wsgid systemd-unit` writes then says so). Neither available: one warning, no notifications.
 *
 * The master removes NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from its environment once read
 * (as sd_notify's unset_environment does), so workers and the app do not inherit them and cannot
 * notify in its name.
 */
import { spawnSync } from 'node:child_process';
import type { Logger } from '../log/logger.js';
import { nativeAddonOrReason } from '../app-folder/privileges.js';
import { NotifyPlan, checkNotifySocket, watchdogMsFrom, type NotifyPlanOptions, type ServiceSnapshot } from './notify-plan.js';

export type { ServiceSnapshot } from './notify-plan.js';

/** What the master calls at each step of its life (MasterHooks.service). */
export interface ServiceNotifier {
  ready(s: ServiceSnapshot): void;
  reloading(s: ServiceSnapshot): void;
  stopping(s: ServiceSnapshot): void;
  /** Once per turn of the master's loop (1 s): end of a reload, STATUS changes, watchdog. */
  tick(s: ServiceSnapshot): void;
}

export type Send = (message: string) => void;

/** How the messages go out: 'addon' (native/notify.c) or 'systemd-notify' (the fallback). */
export type SendVia = 'addon' | 'systemd-notify';

/**
 * A function sending one message to `socket`, or undefined (with the reason) when there is no way.
 * Send errors are logged (once per distinct error), never thrown: systemd missing a STATUS must not
 * stop the master.
 */
export function createSender(socket: string, logger: Logger, pid = process.pid): { send: Send; via: SendVia } | { reason: string } {
  const loaded = nativeAddonOrReason();
  let lastError: string | undefined;
  const failed = (error: string): void => {
    if (error === lastError) return;
    lastError = error;
    logger.warn('could not notify systemd', { socket, error });
  };
  if ('addon' in loaded && typeof loaded.addon.notify === 'function') {
    const notify = loaded.addon.notify;
    return {
      via: 'addon',
      send: (message) => {
        try {
          notify(socket, message);
          lastError = undefined;
        } catch (error) {
          failed((error as Error).message);
        }
      },
    };
  }
  const addonReason = 'addon' in loaded ? "wsgid's native addon predates notify(): rebuild it (npm run build:native)" : loaded.reason;
  const probe = spawnSync('systemd-notify', ['--help'], { stdio: 'ignore', timeout: 5000 });
  if (probe.error) return { reason: `${addonReason}; and systemd-notify is not available (${probe.error.message})` };
  return {
    via: 'systemd-notify',
    send: (message) => {
      const result = spawnSync('systemd-notify', [`--pid=${pid}`, ...message.split('\n')], {
        env: { ...process.env, NOTIFY_SOCKET: socket },
        stdio: ['ignore', 'ignore', 'pipe'],
        encoding: 'utf8',
        timeout: 5000,
      });
      if (result.error || result.status !== 0) failed(result.error?.message ?? (result.stderr.trim() || `systemd-notify exited with ${result.status}`));
      else lastError = undefined;
    },
  };
}

/** systemd's variables, as given to this process. */
export interface NotifyEnvironment {
  NOTIFY_SOCKET?: string;
  WATCHDOG_USEC?: string;
  WATCHDOG_PID?: string;
}

/** NOTIFY_SOCKET from `env` when it is usable; a bad value is logged and ignored. */
export function notifySocketFrom(env: NotifyEnvironment, logger: Logger): string | undefined {
  const socket = env.NOTIFY_SOCKET;
  if (socket === undefined || socket === '') return undefined;
  const problem = checkNotifySocket(socket);
  if (problem) {
    logger.warn(`${problem}; not notifying systemd`);
    return undefined;
  }
  return socket;
}

export interface SystemdNotifierOptions extends Pick<NotifyPlanOptions, 'tickMs' | 'readyBy'> {
  /** The environment to read; its systemd variables are deleted from it (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** The master's notifier when it runs under `Type=notify` (NOTIFY_SOCKET set); else undefined. */
export function systemdNotifier(logger: Logger, options: SystemdNotifierOptions): ServiceNotifier | undefined {
  const env = options.env ?? process.env;
  const given: NotifyEnvironment = { NOTIFY_SOCKET: env.NOTIFY_SOCKET, WATCHDOG_USEC: env.WATCHDOG_USEC, WATCHDOG_PID: env.WATCHDOG_PID };
  delete env.NOTIFY_SOCKET;
  delete env.WATCHDOG_USEC;
  delete env.WATCHDOG_PID;
  const socket = notifySocketFrom(given, logger);
  if (socket === undefined) return undefined;
  const sender = createSender(socket, logger);
  if ('reason' in sender) {
    logger.warn('NOTIFY_SOCKET is set but wsgid cannot notify systemd; run it with Type=exec or build the addon', { reason: sender.reason });
    return undefined;
  }
  const ownPids = options.readyBy === 'parent' ? [process.pid, process.ppid] : [process.pid];
  const watchdogMs = watchdogMsFrom(given.WATCHDOG_USEC, given.WATCHDOG_PID, ownPids);
  if (watchdogMs !== undefined && watchdogMs < 3 * options.tickMs) {
    logger.warn(`WatchdogSec is shorter than wsgid's loop can keep (it ticks every ${options.tickMs} ms): use 3 s or more`, { watchdogMs });
  }
  logger.info('notifying systemd', { socket, via: sender.via, watchdogMs });
  const plan = new NotifyPlan({ tickMs: options.tickMs, readyBy: options.readyBy, watchdogMs });
  const send = (messages: readonly string[]): void => {
    for (const message of messages) sender.send(message);
  };
  return {
    ready: (s) => send(plan.ready(s)),
    reloading: (s) => send(plan.reloading(s, process.hrtime.bigint() / 1000n)),
    stopping: (s) => send(plan.stopping(s)),
    tick: (s) => send(plan.tick(s, Date.now())),
  };
}
