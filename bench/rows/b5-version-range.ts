import { CacheManager, Fid, MemoryFileServer } from '../../src/index.js';
import { VNODE_F64, VNODE_I32, VnodeF64, VnodeI32 } from '../../src/cache/layout.js';
import { medianMs, round } from '../measure.js';
import type { RowFn } from '../row.js';

const BLOCK = 512;

/**
 * Times write-one-block + flush on a file with n cached valid buffers. With `bumpEvery`,
 * each store is followed by what the replaced design did: look up every buffer of the
 * file and set its version to the new dataVersion.
 */
async function writeAndStoreMs(n: number, bumpEvery: boolean, reps: number): Promise<number> {
  const server = new MemoryFileServer();
  const fid = new Fid(1, 536870915, n, 1);
  server.createFile(fid, new Uint8Array(n * BLOCK).fill(7));
  const cm = CacheManager.create(server.connect(), {
    blockSize: BLOCK,
    chunkSize: 64 * 1024,
    cacheSize: Math.max(2 * n * BLOCK, 1 << 20),
    prefetch: false,
  });
  try {
    await cm.read(fid, 0, n * BLOCK);
    const { views, vnodes, buffers } = cm.unsafeExposeInternals();
    const vslot = vnodes.findHold(fid);
    const gen = views.vnodeI32[vslot * VNODE_I32 + VnodeI32.Generation]!;
    const block = new Uint8Array(BLOCK).fill(9);
    let k = 0;
    const ms = await medianMs(reps, async () => {
      await cm.write(fid, (k++ % n) * BLOCK, block);
      await cm.flush(fid);
      if (bumpEvery) {
        const dataVersion = views.vnodeF64[vslot * VNODE_F64 + VnodeF64.DataVersion]!;
        for (let b = 0; b < n; b++) {
          const slot = buffers.findHoldKey(vslot, gen, b, 0);
          if (slot >= 0) {
            views.versions[slot] = dataVersion;
            buffers.release(slot);
          }
        }
      }
    });
    if (server.counters.fetchData !== Math.ceil((n * BLOCK) / (64 * 1024))) throw new Error('B5: buffers were fetched again');
    vnodes.release(vslot);
    return ms;
  } finally {
    await cm.close();
  }
}

/** B5: write+store with N cached buffers, N = 10 .. 10^5, against bumping every buffer. */
export const b5: RowFn = async (ctx) => {
  const sizes = ctx.quick ? [10, 1000, 100_000] : [10, 100, 1000, 10_000, 100_000];
  const reps = ctx.quick ? 15 : 41;
  const ours: Record<number, number> = {};
  const bump: Record<number, number> = {};
  for (const n of sizes) {
    ctx.progress(`B5: N = ${n}`);
    ours[n] = await writeAndStoreMs(n, false, reps);
    bump[n] = await writeAndStoreMs(n, true, reps);
  }
  const small = sizes[0]!;
  const large = sizes[sizes.length - 1]!;
  const growth = ours[large]! / ours[small]!;
  const baselineGrowth = bump[large]! / bump[small]!;
  const extra: Record<string, number> = { 'baseline t(1e5)/t(10)': round(baselineGrowth) };
  for (const n of sizes) {
    extra[`ms, N=${n}`] = round(ours[n]!);
    extra[`baseline ms, N=${n}`] = round(bump[n]!);
  }
  return {
    id: 'B5',
    name: 'Version range: write+store with N cached buffers',
    metric: 'ms per write+store at N = 10^5',
    unit: 'ms',
    value: round(ours[large]!),
    baseline: round(bump[large]!),
    peer: null,
    floor: round(ours[small]!),
    ratio: round(growth),
    goal: 't(10^5)/t(10) <= 1.2, where the bump-every-buffer baseline grows >= 100x',
    met: growth <= 1.2 && baselineGrowth >= 100,
    extra,
  };
};
