/**
 * Environment variables that are not settings but hooks for wsgid's own tests (docs/TESTING.md,
 * "Test hooks"). Settings come from the option table (options.ts); these stay out of it so that
 * `--help` and docs/CLI.md list only what operators set.
 */

/**
 * `WSGID_NATIVE_ADDON`: a path to load the native addon from instead of native/build/. The tests
 * point it at a missing file to exercise the fallbacks (systemd-notify, no USR1 re-pointing).
 */
export function nativeAddonOverride(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.WSGID_NATIVE_ADDON;
}
