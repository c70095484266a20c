/**
 * The `wsgid` commands: built-in descriptions (for --help and the docs) and the registration point
 * for plugin commands (`registerCommand`). A plugin command accepts the `start` options plus any
 * positional arguments; it gets the raw arguments after its name and the resolved Settings
 * (command line over wsgid.json over defaults).
 */
import type { CommandName } from '../config/options.js';
import type { Settings } from '../config/settings.js';

export interface CommandDefinition {
  /** One line for `wsgid --help`. */
  description: string;
  /** Usage line, e.g. "wsgid deploy [options] TARGET" (default: "wsgid NAME [options]"). */
  usage?: string;
  /**
   * Run the command. `argv` is everything after the command name (options included, so a plugin may
   * parse its own); returns the exit code (undefined → 0).
   */
  run(argv: string[], settings: Settings): number | void | Promise<number | void>;
}

export interface BuiltinCommand {
  readonly usage: string;
  readonly description: string;
  /** More text for `wsgid <command> --help`. */
  readonly details?: string;
}

export const BUILTIN_COMMANDS: Readonly<Record<CommandName, BuiltinCommand>> = {
  start: {
    usage: 'wsgid [start] [options]',
    description: 'Start the app as a daemon (the default command); returns once the workers are ready.',
    details:
      'Without --no-daemon, wsgid detaches (new session, umask 022, cwd = app folder, logs to ' +
      'logs/wsgid.log) and exits 0 only when the workers are ready; if the app cannot start it exits ' +
      'non-zero and prints why. Options given here override wsgid.json, which overrides the defaults.',
  },
  init: {
    usage: 'wsgid init --app-path=DIR',
    description: 'Create the app folder layout: app/, logs/, plugins/, pid/master/, pid/worker/.',
    details: 'Creates DIR if needed. Idempotent: never touches existing files.',
  },
  config: {
    usage: 'wsgid config --app-path=DIR [options]',
    description: 'Save the given options into DIR/wsgid.json (merged with what is there).',
    details: 'Given keys replace saved ones; --env values are merged into "envs". Prints the resulting file.',
  },
  stop: {
    usage: 'wsgid stop --app-path=DIR [--send-signal=SIGNAL]',
    description: 'Stop the app: SIGTERM to the master (graceful), then wait until it is gone.',
    details:
      'In-flight requests get --graceful-timeout seconds to finish. wsgid stop waits for the master ' +
      'to exit (bounded by graceful-timeout + 10 s from wsgid.json) and exits 1 if it did not.',
  },
  restart: {
    usage: 'wsgid restart --app-path=DIR [--no-wait]',
    description: 'Rolling reload: SIGHUP to the master; new workers start, then old ones drain. Zero downtime.',
    details:
      'The master re-reads wsgid.json and its command line first. restart waits until every new worker is ready ' +
      '(exit 0) or failed (non-zero, with the error, e.g. the app\'s load error; the old workers keep serving); an ' +
      'invalid wsgid.json is refused with its error (exit 2) and changes nothing; changed settings that need a full ' +
      'restart are named, and so are wsgid.json values the master\'s command line overrides (the command line wins). ' +
      '--no-wait returns once the signal is sent.',
  },
  reload: {
    usage: 'wsgid reload --app-path=DIR [--no-wait]',
    description: 'Same as restart.',
  },
  status: {
    usage: 'wsgid status --app-path=DIR [--json] [--watch [--count=N]]',
    description:
      'Running/Crash-looping/Stopped, master and worker pids (dead ones marked), then the master (uptime, restarts, 502/503/504, queue), ' +
      "the mongrel2 endpoints' connection state and one line per worker (state, age, requests served, in flight, RSS, CPU); " +
      '--json for the same as JSON (docs/STATUS.md), --watch to redraw it every second.',
    details: 'Exit code 0 when running, 1 when workers are crash-looping (they die soon after becoming ready), 3 when stopped.',
  },
  'systemd-unit': {
    usage: 'wsgid systemd-unit --app-path=DIR [start options] [--after=UNIT]... | --app-path=DIR --mongrel2 [--mongrel2-chroot=DIR]',
    description: 'Print a systemd service unit (Type=notify) that runs this app folder with the given options.',
    details:
      'The start options given here go into ExecStart (wsgid.json is read at each start, as always); ' +
      'the option variables set now (WSGID_PING_MS, …) into Environment=. The master runs in the ' +
      'foreground and tells systemd when it is ready, reloading (ExecReload sends HUP) and stopping. ' +
      'Hardening is chosen so the master can still drop workers to the folder owner and chroot. ' +
      'With --mongrel2 it prints the unit for mongrel2 itself instead: in --mongrel2-chroot it runs `m2sh load` of the ' +
      'mongrel2.conf `wsgid mongrel2-config` writes there, then mongrel2 with that config\'s uuid; the wsgid unit, made with ' +
      '--after=<that unit>, wants it and starts after it.',
  },
  'mongrel2-config': {
    usage: 'wsgid mongrel2-config --app-path=DIR [--port=N] [--host=NAME] [--mongrel2-chroot=DIR] [--recv=ENDPOINT --send=ENDPOINT]',
    description: "Print a mongrel2.conf that serves this app folder through wsgid (its handler matches the folder's --recv/--send).",
    details:
      "The handler's send_spec is wsgid's --recv and its recv_spec wsgid's --send (from the command line or wsgid.json), " +
      'with tnetstring headers; app/static/ is served by mongrel2 itself at /static/ when it lies inside mongrel2\'s chroot ' +
      '(--mongrel2-chroot, default /var/www/mongrel2); limits.content_length, upload.temp_store and download.flow_control ' +
      'are set as wsgid needs them. Load it with `m2sh load -config mongrel2.conf -db config.sqlite` in the chroot, then ' +
      '`m2sh start -db config.sqlite -name main`. The uuid and send_ident stay the same for one app folder.',
  },
  dev: {
    usage: 'wsgid dev [APP_DIR] [--port=N] [start options]',
    description: 'Serve an app at http://127.0.0.1:PORT/ through a private mongrel2, in the foreground, reloading on code changes.',
    details:
      'APP_DIR (default: the current directory, or --app-path) is an app folder (it has app/) or the app itself. wsgid ' +
      'configures and starts its own mongrel2 in a private temporary folder (ipc:// endpoints, the config of ' +
      '`wsgid mongrel2-config`), serves the app with the given start options, and on a change of a source file under the ' +
      'app (not node_modules, .git, __pycache__, .next, dist, build, …) does a rolling reload: a new version that fails to ' +
      'load is reported and the old workers keep serving; an app that cannot start is tried again after the next ' +
      'change. Ctrl-C stops wsgid, then mongrel2.',
  },
  check: {
    usage: 'wsgid check --app-path=DIR --mongrel2-db=PATH',
    description: "Check mongrel2's loaded configuration (config.sqlite) against this app folder and say how to fix what does not fit.",
    details:
      "Reads the database with the sqlite3 command. Errors (exit 1): no handler whose send_spec/recv_spec are wsgid's " +
      '--recv/--send (or they are crossed), a send_ident mongrel2 cannot reply with, a recv_ident that filters out ' +
      "wsgid's replies, no route to the handler, limits.content_length below 4096, uploads wsgid cannot find (no " +
      "--mongrel2-chroot, or not mongrel2's chroot). Warnings (exit 0): JSON headers, no upload.temp_store, download " +
      'credits off.',
  },
  'reopen-logs': {
    usage: 'wsgid reopen-logs --app-path=DIR',
    description: 'Reopen every log file (SIGUSR1 to the master), e.g. after logrotate moved them.',
    details: 'The master reopens logs/wsgid.log, logs/access.log and logs/app.log, points its own stdout/stderr at the new wsgid.log, and tells every worker to reopen. See docs/LOGGING.md.',
  },
};

const plugins = new Map<string, CommandDefinition>();

/** Add a subcommand (from a plugin). Names must not clash with built-in or already registered ones. */
export function registerCommand(name: string, definition: CommandDefinition): void {
  if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new Error(`invalid command name '${name}'`);
  if (name in BUILTIN_COMMANDS || plugins.has(name)) throw new Error(`command '${name}' is already defined`);
  plugins.set(name, definition);
}

export function getPluginCommand(name: string): CommandDefinition | undefined {
  return plugins.get(name);
}

export function pluginCommands(): ReadonlyMap<string, CommandDefinition> {
  return plugins;
}
