import { CacheManager, Fid, MemoryFileServer } from '../../src/index.js';
import { VNODE_F64, VNODE_I32, VnodeF64, VnodeI32 } from '../../src/cache/layout.js';
import { median, round } from '../measure.js';
import type { RowFn } from '../row.js';

const BLOCK = 512;

interface Subject {
  /** One write-one-block + store; returns its wall time in ms. */
  once(): Promise<number>;
  close(): Promise<void>;
}

/**
 * A file of n blocks, all cached and valid. With `bumpEvery`, each store is followed by
 * what the replaced design did: look up every buffer of the file and set its version to
 * the new dataVersion.
 */
async function subject(n: number, bumpEvery: boolean): Promise<Subject> {
  const server = new MemoryFileServer();
  const fid = new Fid(1, 536870915, n, 1);
  server.createFile(fid, new Uint8Array(n * BLOCK).fill(7));
  const cm = CacheManager.create(server.connect(), {
    blockSize: BLOCK,
    chunkSize: 64 * 1024,
    cacheSize: Math.max(2 * n * BLOCK, 1 << 20),
    prefetch: false,
  });
  await cm.read(fid, 0, n * BLOCK);
  const fetchedOnce = server.counters.fetchData;
  const { views, vnodes, buffers } = cm.unsafeExposeInternals();
  const vslot = vnodes.findHold(fid);
  const gen = views.vnodeI32[vslot * VNODE_I32 + VnodeI32.Generation]!;
  const block = new Uint8Array(BLOCK).fill(9);
  // Its own function, so that its hot loop is compiled apart from the timed path.
  const bump = (dataVersion: number): void => {
    for (let b = 0; b < n; b++) {
      const slot = buffers.findHoldKey(vslot, gen, b, 0);
      if (slot >= 0) {
        views.versions[slot] = dataVersion;
        buffers.release(slot);
      }
    }
  };
  let k = 0;
  return {
    async once() {
      const t0 = performance.now();
      await cm.write(fid, (k++ % n) * BLOCK, block);
      await cm.flush(fid);
      if (bumpEvery) bump(views.vnodeF64[vslot * VNODE_F64 + VnodeF64.DataVersion]!);
      return performance.now() - t0;
    },
    async close() {
      if (server.counters.fetchData !== fetchedOnce) throw new Error('B5: buffers were fetched again');
      vnodes.release(vslot);
      await cm.close();
    },
  };
}

/** B5: write+store with N cached buffers, N = 10 .. 10^5, against bumping every buffer. */
export const b5: RowFn = async (ctx) => {
  const sizes = ctx.quick ? [10, 1000, 100_000] : [10, 100, 1000, 10_000, 100_000];
  const reps = ctx.quick ? 41 : 151;
  ctx.progress(`B5: caching files of ${sizes.join(', ')} blocks`);
  const ours = await Promise.all(sizes.map((n) => subject(n, false)));
  const bump = await Promise.all(sizes.map((n) => subject(n, true)));
  const oursMs = sizes.map((): number[] => []);
  const bumpMs = sizes.map((): number[] => []);
  // Round robin over the sizes, so drift on a noisy machine hits every size alike; the
  // first rounds warm the JIT and are dropped. Each timed call follows an untimed one of
  // the same subject: right after a long synchronous loop (the baseline at 10^5) the
  // next call runs several times slower on these machines, whatever it is.
  const warmup = 10;
  for (let r = 0; r < reps + warmup; r++) {
    for (let i = 0; i < sizes.length; i++) {
      await ours[i]!.once();
      const a = await ours[i]!.once();
      await bump[i]!.once();
      const b = await bump[i]!.once();
      if (r >= warmup) {
        oursMs[i]!.push(a);
        bumpMs[i]!.push(b);
      }
    }
  }
  await Promise.all([...ours, ...bump].map((s) => s.close()));
  const t = oursMs.map(median);
  const tb = bumpMs.map(median);
  const growth = t[t.length - 1]! / t[0]!;
  const baselineGrowth = tb[tb.length - 1]! / tb[0]!;
  const extra: Record<string, number> = { 'baseline t(1e5)/t(10)': round(baselineGrowth) };
  sizes.forEach((n, i) => {
    extra[`ms, N=${n}`] = round(t[i]!);
    extra[`baseline ms, N=${n}`] = round(tb[i]!);
  });
  return {
    id: 'B5',
    name: 'Version range: write+store with N cached buffers',
    metric: 'ms per write+store at N = 10^5',
    unit: 'ms',
    value: round(t[t.length - 1]!),
    baseline: round(tb[tb.length - 1]!),
    peer: null,
    floor: round(t[0]!),
    ratio: round(growth),
    goal: 't(10^5)/t(10) <= 1.2, where the bump-every-buffer baseline grows >= 100x',
    met: growth <= 1.2 && baselineGrowth >= 100,
    extra,
  };
};
