/** Test helper: systemd's command-line splitting, to read back the ExecStart= wsgid writes. */

/**
 * A command line as systemd splits it (systemd.syntax(7), systemd.service(5) "Command lines"):
 * specifiers first (only `%%` → `%` here), then words separated by whitespace, each possibly
 * double- or single-quoted with C escapes, then `$$` → `$` (wsgid writes no variables).
 */
export function systemdWords(line: string): string[] {
  const text = line.replace(/%%/g, '%');
  const words: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (i >= text.length) break;
    let word = '';
    const quote = text[i] === '"' || text[i] === "'" ? text[i++] : undefined;
    for (; i < text.length; i++) {
      const c = text[i]!;
      if (quote ? c === quote : /\s/.test(c)) {
        if (quote) i++;
        break;
      }
      if (c === '\\') {
        const n = text[++i]!;
        if (n === 'n') word += '\n';
        else if (n === 't') word += '\t';
        else if (n === 'x') {
          word += String.fromCharCode(parseInt(text.slice(i + 1, i + 3), 16));
          i += 2;
        } else word += n;
      } else word += c;
    }
    words.push(word.replace(/\$\$/g, '$'));
  }
  return words;
}
