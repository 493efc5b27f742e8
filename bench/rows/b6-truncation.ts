import { setImmediate as nextTurn } from 'node:timers/promises';

import { CacheManager, Fid, MemoryFileServer } from '../../src/index.js';
import { round } from '../measure.js';
import type { RowFn } from '../row.js';

const PIECE = 32_000; // as a copy from a network stream arrives: not block-aligned
/** The link: 1 ms round trips and 100 MiB/s shared by fetches and stores. */
const RPC_MS = 1;
const BANDWIDTH = 100 * 1024 * 1024;

/**
 * Copies `size` bytes over an existing file of the same size through the cache and
 * flushes. `truncateFirst` is what a copy does (truncate to 0, then write); without it
 * the cache cannot know the old bytes are going away, which is how a truncation-unaware
 * cache sees every copy: partial blocks must be fetched first.
 */
async function copyOver(size: number, truncateFirst: boolean): Promise<{ ms: number; fetches: number; bytes: number }> {
  // The server sleeps on timers alone, leaving this thread to the cache, as a remote one would.
  const server = new MemoryFileServer({ rpcLatencyMs: RPC_MS, bandwidth: BANDWIDTH, preciseSleep: false });
  const fid = new Fid(1, 536870915, 6, 1);
  server.createFile(fid, new Uint8Array(size).fill(1));
  const cm = CacheManager.create(server.connect(), { cacheSize: 2 * size });
  const source = new Uint8Array(size).map((_, i) => i & 0xff);
  try {
    const t0 = performance.now();
    if (truncateFirst) await cm.truncate(fid, 0);
    for (let off = 0; off < size; off += PIECE) {
      // Each piece arrives as its own event, as from a stream or a FUSE request: the
      // cache's background stores get their replies between writes.
      await nextTurn();
      await cm.write(fid, off, source.subarray(off, off + PIECE));
    }
    await cm.flush(fid);
    const ms = performance.now() - t0;
    const stored = server.contents(fid);
    if (stored.length !== size || stored[size - 1] !== source[size - 1]) throw new Error('B6: copy is wrong');
    return { ms, fetches: server.counters.fetchData, bytes: server.counters.bytesFetched };
  } finally {
    await cm.close();
  }
}

/**
 * B6: overwrite copy over a link with latency and bandwidth, truncation-aware against
 * unaware, and against the store-only floor (every byte once over the link, plus one
 * round trip): a copy that fetches nothing and stores at the link's bandwidth (its store
 * calls pipelined) sits near the floor; an unaware one fetches every block it partly
 * overwrites, so the same bytes cross the link twice.
 */
export const b6: RowFn = async (ctx) => {
  const size = (ctx.quick ? 16 : 64) * 1024 * 1024;
  const floorMs = (size / BANDWIDTH) * 1000 + RPC_MS;
  ctx.progress(`B6: truncation-aware copy of ${size >> 20} MiB`);
  const ours = await copyOver(size, true);
  ctx.progress('B6: truncation-unaware copy');
  const unaware = await copyOver(size, false);
  const speedup = unaware.ms / ours.ms;
  const overFloor = ours.ms / floorMs;
  return {
    id: 'B6',
    name: `Overwrite copy of ${size >> 20} MiB, 1 ms RPCs, 100 MiB/s link`,
    metric: 'wall ms, truncation-aware',
    unit: 'ms',
    value: round(ours.ms),
    baseline: round(unaware.ms),
    peer: null,
    floor: round(floorMs),
    ratio: round(speedup),
    goal: '0 fetchData RPCs, aware <= 1.2x the store-only floor (bytes / bandwidth + one RPC), and unaware / aware >= 2',
    met: ours.fetches === 0 && overFloor <= 1.2 && speedup >= 2,
    extra: {
      'aware / floor': round(overFloor),
      'fetch RPCs, aware': ours.fetches,
      'bytes fetched, aware': ours.bytes,
      'fetch RPCs, unaware': unaware.fetches,
      'bytes fetched, unaware': unaware.bytes,
    },
  };
};
