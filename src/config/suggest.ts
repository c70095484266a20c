/**
 * "Did you mean": the known name closest to a mistyped one (an option flag, a command), by
 * Damerau–Levenshtein distance (an adjacent swap counts as one edit: `--wokrers`), close enough
 * only when at most a third of the word changed (and at most 3 edits). A known name the typed word
 * is a prefix of (`--max-req`) also counts: the shortest, when it is a prefix of the others too.
 */

/** Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** The candidate closest to `word`, or undefined when none is close enough. Ties: the first listed. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const lower = word.toLowerCase();
  if (lower.length === 0) return undefined;
  let best: { name: string; distance: number } | undefined;
  for (const name of candidates) {
    const distance = editDistance(lower, name.toLowerCase());
    if (best === undefined || distance < best.distance) best = { name, distance };
  }
  const limit = Math.min(3, Math.max(1, Math.floor(lower.length / 3)));
  if (best && best.distance > 0 && best.distance <= limit) return best.name;
  const prefixed = candidates.filter((name) => lower.length >= 3 && name.toLowerCase().startsWith(lower)).sort((x, y) => x.length - y.length);
  const shortest = prefixed[0];
  return shortest !== undefined && prefixed.every((name) => name.startsWith(shortest)) ? shortest : undefined;
}
