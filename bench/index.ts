/**
 * `npm run bench`: every technique against the design it replaces, what a Node user
 * would use instead, and the physical floor, as ratios measured in this one run.
 * `npm run bench -- --quick` runs the same rows with shorter timings and smaller files;
 * `--only=B1,B4` runs some rows and writes nothing.
 * Writes bench/results/latest.{json,md,svg} and the README's table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { markdownReport, markdownTable, svgChart } from './report.js';
import type { Row, RowContext, RowFn } from './row.js';
import { b1 } from './rows/b1-ref-table.js';
import { b2 } from './rows/b2-ref-table-threads.js';
import { b3 } from './rows/b3-fid.js';
import { b4 } from './rows/b4-rw-lock.js';
import { b5 } from './rows/b5-version-range.js';
import { b6 } from './rows/b6-truncation.js';
import { b7 } from './rows/b7-prefetch.js';
import { b8 } from './rows/b8-cached-read.js';
import { b9 } from './rows/b9-tracing.js';
import { b10 } from './rows/b10-fair-share.js';
import { b11 } from './rows/b11-pags.js';
import { b12 } from './rows/b12-mount.js';
import { b13 } from './rows/b13-listing.js';
import { b14 } from './rows/b14-restart.js';
import { b15 } from './rows/b15-reader-hits.js';
import { m1 } from './rows/m1-sequential-read.js';
import { m2 } from './rows/m2-random-read.js';
import { m3 } from './rows/m3-write.js';
import { m4 } from './rows/m4-tree.js';
import { m5 } from './rows/m5-git-status.js';
import { fuseUnavailable } from '../src/mount/fuse.js';
import { goalProgress } from './goals.js';
import { updateReadme } from './update-readme.js';

const ROWS: ReadonlyArray<[string, RowFn]> = [
  ['B1', b1],
  ['B2', b2],
  ['B3', b3],
  ['B4', b4],
  ['B5', b5],
  ['B6', b6],
  ['B7', b7],
  ['B8', b8],
  ['B9', b9],
  ['B10', b10],
  ['B11', b11],
  ['B12', b12],
  ['B13', b13],
  ['B14', b14],
  ['B15', b15],
  ['M1', m1],
  ['M2', m2],
  ['M3', m3],
  ['M4', m4],
  ['M5', m5],
];

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',');
  const started = performance.now();
  const elapsed = (): string => `${((performance.now() - started) / 1000).toFixed(1)}s`;
  const ctx: RowContext = { quick, progress: (m) => console.log(`  [${elapsed()}] ${m}`) };
  const rows: Row[] = [];
  const skipped: string[] = [];
  for (const [id, fn] of ROWS) {
    if (only !== undefined && !only.includes(id)) continue;
    console.log(`[${elapsed()}] ${id} ...`);
    const out = await fn(ctx);
    if (out === undefined) {
      skipped.push(id);
      continue;
    }
    for (const row of [out].flat()) {
      rows.push(row);
      console.log(`[${elapsed()}] ${row.id} ${row.name}: ${row.metric} = ${row.value} ${row.unit}; ratio ${row.ratio} (${row.goal}): ${row.met ? 'met' : 'NOT met'}`);
    }
  }
  console.log(`\n${markdownTable(rows)}\n`);
  if (only !== undefined) {
    for (const r of rows) if (r.extra !== undefined) console.log(`- ${r.id}: ${Object.entries(r.extra).map(([k, v]) => `${k} ${v}`).join('; ')}`);
  }
  // The run's last line: which rows did not run here, and why.
  const why = fuseUnavailable();
  const skipLine = skipped.length === 0 ? 'skipped: no row' : `skipped: ${skipped.join(', ')} (${why ?? 'see their lines above'})`;
  if (only !== undefined) {
    console.log(`--only: a partial run; bench/results and the README are left as they were (${elapsed()}).`);
    console.log(skipLine);
    return;
  }
  const meta = { node: process.version, cpus: os.cpus().length, date: new Date().toISOString(), quick };
  const dir = path.join(__dirname, '..', '..', 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'latest.json'), JSON.stringify({ ...meta, rows }, null, 2) + '\n');
  writeFileSync(path.join(dir, 'latest.md'), markdownReport(rows, meta));
  writeFileSync(path.join(dir, 'latest.svg'), svgChart(rows, goalProgress));
  updateReadme(rows, meta);
  console.log(`Wrote bench/results/latest.{json,md,svg} and the README table in ${elapsed()}.`);
  console.log(skipLine);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
