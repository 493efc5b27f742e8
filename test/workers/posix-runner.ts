/**
 * Runs the POSIX cases (../helpers/posix-cases.ts) in fresh directories under a base
 * directory, as whoever runs this process, and prints one JSON line of results.
 * Usage: node posix-runner.js <base-dir> <ctx-json> [name-filter]
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';

import { cases, type Ctx } from '../helpers/posix-cases.js';

const [base, ctxJson, filter] = process.argv.slice(2);
const ctx = JSON.parse(ctxJson!) as Ctx;
const results: Array<{ name: string; ok: boolean; message?: string | undefined }> = [];
cases.forEach((c, i) => {
  if (filter !== undefined && !c.name.includes(filter)) return;
  const dir = path.join(base!, `case-${i}`);
  process.umask(0o022);
  try {
    mkdirSync(dir, 0o755);
    c.run(dir, ctx);
    results.push({ name: c.name, ok: true });
  } catch (e) {
    results.push({ name: c.name, ok: false, message: (e as Error).message.split('\n')[0] });
  }
});
process.stdout.write(JSON.stringify(results) + '\n');
