/**
 * Old option spellings still accepted (OptionSpec.deprecated): each use is said once per process,
 * in one line (the master re-reads wsgid.json on every HUP; one warning is enough).
 */
const said = new Set<string>();
/**
 * stderr; not in the daemon `wsgid start` re-runs (cli/daemon.ts marks it): the command the user
 * typed said it on the terminal already, and the daemon's stderr is wsgid.log.
 */
let sink: (line: string) => void = (line) => {
  if (process.env['WSGID_DAEMON_CHILD'] !== '1') process.stderr.write(line);
};

/** Say `text` (e.g. "--keep-alive is deprecated: use --respawn") unless it was said already. */
export function warnDeprecated(text: string): void {
  if (said.has(text)) return;
  said.add(text);
  sink(`wsgid: warning: ${text}\n`);
}

/** Where warnings go (tests collect them); returns the previous sink. */
export function setDeprecationSink(next: (line: string) => void): (line: string) => void {
  const previous = sink;
  sink = next;
  said.clear();
  return previous;
}
