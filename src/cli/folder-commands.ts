/**
 * Commands that only work on the app folder: init, config, systemd-unit.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeConfigFile, toJsonObject } from '../config/file.js';
import type { OptionValues } from '../config/options.js';
import type { Settings } from '../config/settings.js';
import { EXIT, UsageError } from '../errors.js';
import { cliArgsOf } from '../config/args.js';
import { givenEnvVariables, resolveFolders } from '../config/resolve.js';
import { nativeAddonOrReason } from '../app-folder/privileges.js';
import { checkLineValue, renderUnit, unitName } from '../systemd/unit.js';
import { M2SH, MONGREL2, checkMongrel2UnitInputs, renderMongrel2Unit } from '../systemd/mongrel2-unit.js';
import { stableUuid } from '../mongrel2/config.js';
import { DEFAULT_MONGREL2_CHROOT } from './mongrel2-config.js';
import { appFolderPaths, checkAppFolderExists, initAppFolder } from '../app-folder/layout.js';
import type { Output } from './control.js';

/** `wsgid init`: create the layout; idempotent. */
export function initCommand(settings: Settings, io: Output): number {
  const created = initAppFolder(settings.appPath);
  const root = appFolderPaths(settings.appPath).root;
  if (created.length === 0) io.out(`${root} is already a wsgid app folder (nothing to do)\n`);
  else io.out(`initialized ${root}: created ${created.map((d) => path.relative(root, d) || '.').join(', ')}\n`);
  io.out(`put your application in ${path.join(root, 'app')}\n`);
  return EXIT.OK;
}

/** `wsgid config`: merge the options given on the command line into DIR/wsgid.json. */
export function configCommand(appPath: string, cliValues: Partial<OptionValues>, io: Output): number {
  const { root } = checkAppFolderExists(appPath);
  const given = toJsonObject(cliValues);
  const written = writeConfigFile(root, cliValues);
  const recv = written.values.recv ?? [];
  const send = written.values.send ?? [];
  if (recv.length !== send.length) {
    io.err(`wsgid: warning: ${written.path} now has ${recv.length} recv and ${send.length} send endpoints; they pair by position\n`);
  }
  io.out(`${Object.keys(given).length ? 'updated' : 'unchanged'} ${written.path}:\n`);
  io.out(JSON.stringify(toJsonObject(written.values), null, 2) + '\n');
  return EXIT.OK;
}

/** The path of this CLI's main module (what ExecStart runs). */
function cliPath(): string {
  return path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.js');
}

/**
 * `wsgid systemd-unit`: print a unit that runs this app folder with the flags given here (see
 * systemd/unit.ts). `given` are the values typed on the command line (not wsgid.json's, which the
 * service reads itself), `settings` the resolved ones (checked, and for the stop timeout).
 */
export function systemdUnitCommand(settings: Settings, given: Partial<OptionValues>, io: Output): number {
  const { root } = checkAppFolderExists(settings.appPath);
  const problem = checkLineValue('the app folder path', root);
  if (problem) throw new UsageError(problem);
  if (given.mongrel2) return mongrel2UnitCommand(root, settings, io);
  // Relative folders were typed relative to here; the service runs in the app folder.
  const values: Partial<OptionValues> = { ...resolveFolders(given, process.cwd()), appPath: undefined, noDaemon: undefined, after: undefined, mongrel2: undefined };
  const args = cliArgsOf(values);
  if (settings.recv.length === 0) {
    io.err('wsgid: warning: no mongrel2 endpoints given here nor in wsgid.json: the service will not start until wsgid.json has them\n');
  }
  const loaded = nativeAddonOrReason();
  const notifyAccess = 'addon' in loaded && typeof loaded.addon.notify === 'function' ? 'main' : 'all';
  io.out(
    renderUnit({
      root,
      node: process.execPath,
      cli: cliPath(),
      args,
      environment: givenEnvVariables(),
      after: given.after ?? [],
      stopTimeoutSec: settings.gracefulTimeout + 10,
      reload: settings.workers > 0,
      notifyAccess,
      generatedBy: ['wsgid systemd-unit', `--app-path=${root}`, ...args, ...(given.after ?? []).map((u) => `--after=${u}`)].join(' ').replace(/[\n\r]/g, ' '),
    }),
  );
  return EXIT.OK;
}

/**
 * `wsgid systemd-unit --mongrel2`: the unit for mongrel2 itself (systemd/mongrel2-unit.ts), in the
 * chroot `wsgid mongrel2-config` takes (same default), with the uuid it derives from the folder.
 */
function mongrel2UnitCommand(root: string, settings: Settings, io: Output): number {
  const chroot = settings.mongrel2Chroot ? path.resolve(settings.mongrel2Chroot) : DEFAULT_MONGREL2_CHROOT;
  const problem = checkMongrel2UnitInputs({ chroot });
  if (problem) throw new UsageError(problem);
  if (!settings.mongrel2Chroot) {
    io.err(`wsgid: warning: no --mongrel2-chroot: the unit uses ${chroot}, as wsgid mongrel2-config does\n`);
  }
  io.out(
    renderMongrel2Unit({
      root,
      chroot,
      uuid: stableUuid(root),
      wsgidUnit: unitName(root),
      m2sh: M2SH,
      mongrel2: MONGREL2,
      generatedBy: ['wsgid systemd-unit', `--app-path=${root}`, `--mongrel2-chroot=${chroot}`, '--mongrel2'].join(' ').replace(/[\n\r]/g, ' '),
    }),
  );
  return EXIT.OK;
}
