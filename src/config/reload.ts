/**
 * What a HUP does with a re-read configuration (pure): the options marked `reloadable` in
 * ./options.ts take their new value; any other changed option keeps its running value and is
 * named, since it needs a full restart (endpoints, chroot, log destination, ...).
 */
import { isDeepStrictEqual } from 'node:util';
import { OPTION_LIST, type OptionName } from './options.js';
import type { Settings } from './settings.js';

export interface ReloadPlan {
  /** The settings to run with from now on. */
  settings: Settings;
  /** Flags (`--workers`) whose new value takes effect through the rolling reload. */
  changed: string[];
  /** Flags whose value changed but needs a full restart (the running value is kept). */
  needsRestart: string[];
}

export function planReload(running: Settings, next: Settings): ReloadPlan {
  const settings: Record<string, unknown> = { ...running };
  const changed: string[] = [];
  const needsRestart: string[] = [];
  for (const { name, spec } of OPTION_LIST) {
    if (!(name in running) && !(name in next)) continue; // a command-only value
    const before = running[name as keyof Settings];
    const after = next[name as keyof Settings];
    if (isDeepStrictEqual(before, after)) continue;
    if (spec.reloadable) {
      settings[name as OptionName] = after;
      changed.push(`--${spec.flag}`);
    } else {
      needsRestart.push(`--${spec.flag}`);
    }
  }
  return { settings: settings as unknown as Settings, changed, needsRestart };
}
