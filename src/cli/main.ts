#!/usr/bin/env node
/**
 * The `wsgid` command. Thin: parse (config/args.ts), resolve Settings (config/resolve.ts), run the
 * command, map errors to exit codes (src/errors.ts EXIT). See `wsgid --help`.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseCommandLine } from '../config/args.js';
import { registerPluginCommands } from './plugin-commands.js';
import { EXIT, WsgidError } from '../errors.js';
import { resolveSettings } from '../config/resolve.js';
import { getPluginCommand, pluginCommands } from './commands.js';
import { reopenLogsCommand, restartCommand, statusCommand, stopCommand, type Output } from './control.js';
import { configCommand, initCommand, systemdUnitCommand } from './folder-commands.js';
import { mongrel2ConfigCommand } from './mongrel2-config.js';
import { devCommand } from './dev.js';
import { checkCommand } from './check.js';
import { renderHelp } from './help.js';
import { startCommand } from './start.js';
import { VERSION } from '../version.js';

const io: Output = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};


export async function main(argv: readonly string[]): Promise<number> {
  // Subcommands from plugins (plugins/ and --loader-dir) must be known before parsing.
  await registerPluginCommands(argv);
  const parsed = parseCommandLine(argv, [...pluginCommands().keys()]);
  if (parsed.version) {
    io.out(`wsgid ${VERSION}\n`);
    return EXIT.OK;
  }
  if (parsed.help) {
    io.out(renderHelp(parsed.command));
    return EXIT.OK;
  }
  const { command, values } = parsed;
  switch (command) {
    case 'start': {
      const { settings } = resolveSettings(values, { readFile: true });
      // HUP re-reads the configuration the same way: this command line, its folder, wsgid.json now.
      const cwd = process.cwd();
      return startCommand(settings, argv, () => resolveSettings(values, { readFile: true, requireEndpoints: true, cwd }));
    }
    case 'init':
      return initCommand(resolveSettings(values).settings, io);
    case 'config':
      return configCommand(resolveSettings(values).settings.appPath, { ...values, appPath: undefined }, io);
    case 'stop': {
      const { settings, commandValues } = resolveSettings(values);
      return stopCommand(settings, commandValues, io);
    }
    case 'restart':
    case 'reload': {
      const { settings, commandValues } = resolveSettings(values);
      return restartCommand(settings, commandValues, io);
    }
    case 'status': {
      const { settings, commandValues } = resolveSettings(values);
      return statusCommand(settings, commandValues, io);
    }
    case 'reopen-logs':
      return reopenLogsCommand(resolveSettings(values).settings, io);
    case 'systemd-unit':
      return systemdUnitCommand(resolveSettings(values, { readFile: true }).settings, values, io);
    case 'check': {
      const { settings, commandValues } = resolveSettings(values, { readFile: true });
      return checkCommand(settings, commandValues, io);
    }
    case 'dev':
      return devCommand(values, parsed.positionals, io);
    case 'mongrel2-config': {
      const { settings, commandValues } = resolveSettings(values, { readFile: true });
      return mongrel2ConfigCommand(settings, commandValues, io);
    }
    default: {
      const plugin = getPluginCommand(command);
      if (!plugin) throw new WsgidError(`unknown command '${command}'`, 'WSGID_ERR_USAGE');
      const { settings } = resolveSettings(values, { readFile: true });
      const rest = [...argv];
      rest.splice(rest.indexOf(command), 1);
      return (await plugin.run(rest, settings)) ?? EXIT.OK;
    }
  }
}

function isMain(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // The master may leave handles (sockets, timers) behind once it has returned: don't hang.
      if (process.exitCode !== undefined) setImmediate(() => process.exit(code));
    },
    (error: unknown) => {
      if (error instanceof WsgidError) {
        process.stderr.write(`wsgid: ${error.message}\n`);
        process.exit(error.exitCode);
      }
      // An operating condition (EROFS, EMFILE, EACCES…) is said, never shown as a stack trace.
      const code = (error as NodeJS.ErrnoException | undefined)?.code;
      if (error instanceof Error && typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) {
        process.stderr.write(`wsgid: ${error.message.replace(/\/proc\/self\/fd\/\d+\//g, '')}\n`);
        process.exit(EXIT.FAILURE);
      }
      process.stderr.write(`wsgid: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(EXIT.FAILURE);
    },
  );
}
