import { CacheManager, Fid, MemoryFileServer } from '../../src/index.js';
import { round } from '../measure.js';
import type { RowFn } from '../row.js';

const MiB = 1024 * 1024;
const READ = 64 * 1024;

async function coldRead(size: number, bandwidth: number, prefetch: boolean): Promise<number> {
  const server = new MemoryFileServer({ rpcLatencyMs: 1, bandwidth });
  const fid = new Fid(1, 536870915, 7, 1);
  server.createFile(fid, new Uint8Array(size).fill(3));
  const cm = CacheManager.create(server.connect(), { cacheSize: size + 8 * MiB, prefetch, maxReadahead: 8 * MiB });
  try {
    const into = new Uint8Array(READ);
    const t0 = performance.now();
    for (let off = 0; off < size; off += READ) await cm.readInto(fid, off, into);
    const seconds = (performance.now() - t0) / 1000;
    return size / seconds;
  } finally {
    await cm.close();
  }
}

/** B7: cold sequential read with 1 ms RPC latency and a bandwidth limit, prefetch vs none. */
export const b7: RowFn = async (ctx) => {
  const size = (ctx.quick ? 16 : 64) * MiB;
  const bandwidth = 256 * MiB;
  ctx.progress(`B7: cold read of ${size >> 20} MiB with prefetch`);
  const withPrefetch = await coldRead(size, bandwidth, true);
  ctx.progress('B7: cold read without prefetch');
  const without = await coldRead(size, bandwidth, false);
  const ratio = withPrefetch / without;
  const ofLimit = withPrefetch / bandwidth;
  return {
    id: 'B7',
    name: `Cold sequential read of ${size >> 20} MiB, 1 ms RPC, ${bandwidth / MiB} MiB/s limit`,
    metric: 'MiB/s with prefetch',
    unit: 'MiB/s',
    value: round(withPrefetch / MiB),
    baseline: round(without / MiB),
    peer: null,
    floor: round(bandwidth / MiB),
    ratio: round(ratio),
    goal: '>= 80% of the bandwidth limit, and >= 5x the run without prefetch',
    met: ofLimit >= 0.8 && ratio >= 5,
    extra: { 'fraction of the bandwidth limit': round(ofLimit) },
  };
};
