/**
 * Copies the table of bench/results/latest.json into the README, between the
 * <!-- bench-table --> markers. `npm run bench` calls it after writing the results.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { markdownTable } from './report.js';
import type { Row } from './row.js';

export function updateReadme(rows: readonly Row[], meta: { date: string; quick: boolean }): void {
  const file = path.join(__dirname, '..', '..', 'README.md');
  const readme = readFileSync(file, 'utf8');
  const start = '<!-- bench-table -->';
  const end = '<!-- /bench-table -->';
  const a = readme.indexOf(start);
  const b = readme.indexOf(end);
  if (a < 0 || b < a) return;
  const table = `\n${markdownTable(rows)}\n\n_${meta.date}${meta.quick ? ', --quick' : ''}; more numbers per row in bench/results/latest.md._\n`;
  writeFileSync(file, readme.slice(0, a + start.length) + table + readme.slice(b));
}
