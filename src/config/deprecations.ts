/**
 * Old option spellings still accepted (OptionSpec.deprecated): each use is said once per process,
 * in one line (the master re-reads wsgid.json on every HUP; one warning is enough).
 */
const said = new Set<string>();
let sink: (line: string) => void = (line) => void process.stderr.write(line);

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
