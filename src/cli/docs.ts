/**
 * `npm run docs`: print the Markdown CLI reference (generated from the option and command tables),
 * to paste into README.md between the "CLI reference" markers.
 */
import { renderOptionsMarkdown } from './help.js';

process.stdout.write(renderOptionsMarkdown());
