import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import * as cmkit from '../../src/index.js';
import { median, medianNsPerOp, round } from '../measure.js';
import type { RowFn } from '../row.js';

/** Matches a whole trace-point statement of the compiled cache manager. */
const TRACE_POINT = /^\s*this\.#trace\.(read|write|fetch|store|status)\(.*\);\s*$/gm;

/**
 * The same compiled cmkit with every trace point removed: a copy of dist/src whose
 * cache manager has the trace statements deleted. It loads the same addon.
 */
function loadBuildWithoutTracePoints(): { module: typeof cmkit; removed: number } {
  const src = path.join(__dirname, '..', '..', 'src');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cmkit-notrace-'));
  cpSync(src, path.join(dir, 'src'), { recursive: true });
  const file = path.join(dir, 'src', 'cache', 'cache-manager.js');
  const code = readFileSync(file, 'utf8');
  const removed = code.match(TRACE_POINT)?.length ?? 0;
  writeFileSync(file, code.replace(TRACE_POINT, ''));
  process.env['CMKIT_ADDON'] ??= path.join(__dirname, '..', '..', '..', 'build', 'Release', 'cmkit.node');
  return { module: require(path.join(dir, 'src', 'index.js')) as typeof cmkit, removed };
}

/** B9: the hot (cached) read path with tracing disabled, against the same path built with no trace points. */
export const b9: RowFn = async (ctx) => {
  const { module: bare, removed } = loadBuildWithoutTracePoints();
  if (removed < 5) throw new Error(`B9: expected to remove the trace points, removed ${removed}`);
  const size = 4 * 1024 * 1024;
  const make = async (lib: typeof cmkit): Promise<{ cm: cmkit.CacheManager; fid: cmkit.Fid }> => {
    const server = new lib.MemoryFileServer();
    const fid = new lib.Fid(1, 536870915, 9, 1);
    server.createFile(fid, new Uint8Array(size).fill(9));
    const cm = lib.CacheManager.create(server.connect(), { cacheSize: 2 * size, prefetch: false });
    await cm.read(fid, 0, size);
    return { cm, fid };
  };
  const traced = await make(cmkit);
  const plain = await make(bare);
  if (traced.cm.trace.enabled('read')) throw new Error('B9: tracing must be off');
  const into = new Uint8Array(4096);
  const batch = 64;
  const loop = (c: { cm: cmkit.CacheManager; fid: cmkit.Fid }) => async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await c.cm.readInto(c.fid, (i * 4096 * 37) % size, into);
  };
  const tracedLoop = loop(traced);
  const plainLoop = loop(plain as unknown as { cm: cmkit.CacheManager; fid: cmkit.Fid });
  // Alternate the two several times; the ratio is the median of the per-round ratios.
  const ratios: number[] = [];
  const tracedNs: number[] = [];
  const plainNs: number[] = [];
  for (let r = 0; r < (ctx.quick ? 3 : 7); r++) {
    const ns = await medianNsPerOp({ 'trace points, disabled': tracedLoop, 'no trace points': plainLoop }, { quick: ctx.quick, batch });
    tracedNs.push(ns['trace points, disabled']!);
    plainNs.push(ns['no trace points']!);
    ratios.push(ns['trace points, disabled']! / ns['no trace points']!);
  }
  await traced.cm.close();
  await plain.cm.close();
  const ratio = median(ratios);
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
    extra: { 'trace points removed for the baseline': removed },
  };
};
