import { cpSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type * as cmkit from '../../src/index.js';
import { median, round } from '../measure.js';
import type { RowFn } from '../row.js';

/** Matches a whole trace-point statement of the compiled cache (the facade's and its phases'). */
const TRACE_POINT = /^\s*(?:this\.#cache|cache)\.trace\.(read|write|fetch|store|status)\(.*\);\s*$/gm;

/**
 * A fresh copy of the compiled cmkit (dist/src), with or without its trace points. Both
 * sides of the row load such a copy the same way, so neither inherits the JIT state the
 * other rows left in the main copy. Both load the same addon.
 */
function loadCopy(stripTracePoints: boolean): { module: typeof cmkit; removed: number } {
  const src = path.join(__dirname, '..', '..', 'src');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cmkit-notrace-'));
  cpSync(src, path.join(dir, 'src'), { recursive: true });
  // The copy's own imports (piscina) resolve from the project's packages.
  symlinkSync(path.join(__dirname, '..', '..', '..', 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  let removed = 0;
  if (stripTracePoints) {
    const cacheDir = path.join(dir, 'src', 'cache');
    for (const name of readdirSync(cacheDir).filter((n) => n.endsWith('.js'))) {
      const file = path.join(cacheDir, name);
      const code = readFileSync(file, 'utf8');
      removed += code.match(TRACE_POINT)?.length ?? 0;
      writeFileSync(file, code.replace(TRACE_POINT, ''));
    }
  }
  process.env['CMKIT_ADDON'] ??= path.join(__dirname, '..', '..', '..', 'build', 'Release', 'cmkit.node');
  return { module: require(path.join(dir, 'src', 'index.js')) as typeof cmkit, removed };
}

/** B9: the hot (cached) read path with tracing disabled, against the same path built with no trace points. */
type Subject = { cm: cmkit.CacheManager; fid: cmkit.Fid };

const SIZE = 4 * 1024 * 1024;
const BATCH = 200;

async function cachedFile(lib: typeof cmkit): Promise<Subject> {
  const server = new lib.MemoryFileServer();
  const fid = new lib.Fid(1, 536870915, 9, 1);
  server.createFile(fid, new Uint8Array(SIZE).fill(9));
  const cm = lib.CacheManager.create(server.connect(), { cacheSize: 2 * SIZE, prefetch: false });
  await cm.read(fid, 0, SIZE);
  return { cm, fid };
}

async function timeBatch(s: Subject, into: Uint8Array): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < BATCH; i++) await s.cm.readInto(s.fid, (i * 4096 * 37) % SIZE, into);
  return ((performance.now() - t0) * 1e6) / BATCH;
}

/**
 * B9: the hot (cached) read path with tracing disabled, against the same path built with
 * no trace points.
 *
 * A 2% claim needs care on a noisy machine. Batches of the two builds alternate (the
 * order flipping every pair), so drift cancels; and since two copies of the same code can
 * be compiled a few percent apart by the JIT, the whole comparison is repeated on several
 * fresh pairs of copies. The ratio is the median over copies of the median per-pair ratio.
 */
export const b9: RowFn = async (ctx) => {
  const copies = ctx.quick ? 5 : 15;
  const pairs = ctx.quick ? 100 : 300;
  const into = new Uint8Array(4096);
  const copyRatios: number[] = [];
  const tracedNs: number[] = [];
  const plainNs: number[] = [];
  let removed = 0;
  for (let c = 0; c < copies; c++) {
    const withPoints = loadCopy(false).module;
    const stripped = loadCopy(true);
    removed = stripped.removed;
    if (removed < 5) throw new Error(`B9: expected to remove the trace points, removed ${removed}`);
    const traced = await cachedFile(withPoints);
    const plain = await cachedFile(stripped.module);
    if (traced.cm.trace.enabled('read')) throw new Error('B9: tracing must be off');
    const ratios: number[] = [];
    for (let p = 0; p < pairs + 20; p++) {
      const tracedFirst = p % 2 === 0;
      const a = tracedFirst ? await timeBatch(traced, into) : 0;
      const b = await timeBatch(plain, into);
      const a2 = tracedFirst ? a : await timeBatch(traced, into);
      if (p < 20) continue; // warm-up
      tracedNs.push(a2);
      plainNs.push(b);
      ratios.push(a2 / b);
    }
    copyRatios.push(median(ratios));
    await traced.cm.close();
    await plain.cm.close();
  }
  const ratio = median(copyRatios);
  return {
    id: 'B9',
    name: 'Hot cached 4 KiB read, tracing disabled vs no trace points',
    metric: 'ns per cached 4 KiB readInto, trace points disabled',
    unit: 'ns',
    value: round(median(tracedNs)),
    baseline: round(median(plainNs)),
    peer: null,
    floor: null,
    ratio: round(ratio, 4),
    goal: 'disabled / no trace points <= 1.02',
    met: ratio <= 1.02,
    extra: {
      'trace points removed for the baseline': removed,
      'lowest per-copy ratio': round(Math.min(...copyRatios), 4),
      'highest per-copy ratio': round(Math.max(...copyRatios), 4),
    },
  };
};
