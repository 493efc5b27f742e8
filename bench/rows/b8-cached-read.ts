import { CacheManager, Fid, MemoryFileServer } from '../../src/index.js';
import { median, round } from '../measure.js';
import { benchPool, newBarrier } from '../pool.js';
import type { RowFn } from '../row.js';
import type { BenchTask } from '../workers/bench-worker.js';

const MiB = 1024 * 1024;

/** B8: cached reads from 2 workers against 1, 4 KiB and 1 MiB reads, and copies per byte. */
export const b8: RowFn = async (ctx) => {
  const size = 32 * MiB;
  const server = new MemoryFileServer();
  const fid = new Fid(1, 536870915, 8, 1);
  server.createFile(fid, new Uint8Array(size).fill(5));
  const cm = CacheManager.create(server.connect(), { cacheSize: size + 8 * MiB, prefetch: false });
  await cm.read(fid, 0, size);
  const pool = benchPool(2);
  try {
    const once = async (threads: number, readSize: number, ops: number): Promise<number> => {
      const task: BenchTask = { kind: 'cachedRead', cache: cm.descriptor, fid: fid.toJSON(), fileLength: size, readSize, ops, barrier: newBarrier(), parties: threads, countCopies: false };
      const results = await Promise.all(Array.from({ length: threads }, () => pool.run(task)));
      return (threads * ops * readSize) / (Math.max(...results.map((x) => x.ms)) / 1000);
    };
    // One worker and two alternate, so drift on a noisy machine hits both alike.
    const rates = async (readSize: number, ops: number): Promise<[number, number]> => {
      const one: number[] = [];
      const two: number[] = [];
      for (let r = 0; r < (ctx.quick ? 5 : 9); r++) {
        one.push(await once(1, readSize, ops));
        two.push(await once(2, readSize, ops));
      }
      return [median(one), median(two)];
    };
    const smallOps = ctx.quick ? 20_000 : 100_000;
    const largeOps = ctx.quick ? 200 : 1000;
    ctx.progress('B8: 4 KiB reads, 1 and 2 workers');
    const [small1, small2] = await rates(4096, smallOps);
    ctx.progress('B8: 1 MiB reads, 1 and 2 workers');
    const [large1, large2] = await rates(MiB, largeOps);

    const counted = await pool.run({ kind: 'cachedRead', cache: cm.descriptor, fid: fid.toJSON(), fileLength: size, readSize: 4096, ops: 1000, barrier: newBarrier(), parties: 1, countCopies: true });
    const copiesPerByte = counted.bytesCopied! / (1000 * 4096);
    const scaling = Math.min(small2 / small1, large2 / large1);
    return {
      id: 'B8',
      name: 'Cached reads, 2 workers vs 1',
      metric: 'aggregate MiB/s, 2 workers, 4 KiB reads',
      unit: 'MiB/s',
      value: round(small2 / MiB),
      baseline: round(small1 / MiB),
      peer: null,
      floor: null,
      ratio: round(scaling),
      goal: '2 workers / 1 worker >= 1.7 for 4 KiB and 1 MiB reads; bytes copied per byte read = 1 (the caller\'s own copy)',
      met: scaling >= 1.7 && copiesPerByte === 1,
      extra: {
        '4 KiB: 2/1 workers': round(small2 / small1),
        '1 MiB: 2/1 workers': round(large2 / large1),
        '1 MiB MiB/s, 2 workers': round(large2 / MiB),
        'bytes copied per byte read': round(copiesPerByte),
      },
    };
  } finally {
    await pool.destroy();
    await cm.close();
  }
};
