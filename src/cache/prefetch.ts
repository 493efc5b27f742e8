/**
 * Prefetch: reading ahead of a sequential reader in the background. readahead.ts is the
 * policy (when, and how big a window); this is the work: one stream per open file on
 * this thread, and claiming and fetching a window's blocks.
 *
 * Invariants:
 * - Prefetch never waits for anything: a block that is valid or busy is skipped, a full
 *   table ends the window, and its RPCs are never retried (origin 'prefetch'). A failed
 *   prefetch is a missed chance; the reader fetches on demand.
 * - The blocks it brings in are marked Prefetched until their first read, which counts
 *   them as used.
 */

import { holdBuffer, isValid } from './buffers.js';
import { schedule, type CacheContext, type Vnode } from './context.js';
import { claimRun, fetchRun } from './fetch.js';
import { BufferState, HEADER_I32, HeaderI32, VnodeF64 } from './layout.js';
import type { Run } from './need.js';
import { Readahead } from './readahead.js';
import { zeroPoint } from './vnode-status.js';

/** Streams this thread tracks at once; the oldest goes first. */
const READAHEAD_STREAMS = 1024;

/** After a read of [offset, offset + length) of v: starts the next window if it is time. */
export function startReadahead(cache: CacheContext, v: Vnode, offset: number, length: number): void {
  const key = `${v.slot}.${v.gen}`;
  let ra = cache.readahead.get(key);
  if (ra === undefined) {
    if (cache.readahead.size >= READAHEAD_STREAMS) cache.readahead.delete(cache.readahead.keys().next().value!);
    ra = new Readahead(cache.maxReadahead);
    cache.readahead.set(key, ra);
  }
  const window = ra.onRead(offset, length);
  if (window === undefined) return;
  schedule(cache, v, { kind: 'prefetch', fid: v.fid.toJSON(), start: window.start, end: window.start + window.length });
}

/**
 * Whether a read at `offset` of v continues this thread's stream of it (or starts one at
 * 0): a miss of such a read is fetched to the end of its chunk.
 */
export function continuesStream(cache: CacheContext, v: Vnode, offset: number): boolean {
  const ra = cache.readahead.get(`${v.slot}.${v.gen}`);
  return ra !== undefined ? ra.continues(offset) : offset === 0;
}

/** Claims and fetches, chunk by chunk, the blocks of [start, end) that need it. */
export async function prefetchWindow(cache: CacheContext, v: Vnode, start: number, end: number): Promise<void> {
  const bs = cache.blockSize;
  const runs: Run[] = [];
  await v.lock.readAsync();
  try {
    const stop = Math.min(end, zeroPoint(cache, v), cache.v.vnodeF64[v.f + VnodeF64.Length]!);
    for (let block = Math.floor(start / bs); block * bs < stop; block++) {
      const slot = holdBuffer(cache, v, block);
      if (typeof slot !== 'number') {
        if (slot.kind === 'full') break;
        continue;
      }
      const state = Atomics.load(cache.v.headers, slot * HEADER_I32 + HeaderI32.State);
      if ((state & BufferState.Busy) !== 0 || isValid(cache, v, slot, state)) {
        cache.buffers.release(slot);
        continue;
      }
      const need = claimRun(cache, v, block, slot, state, end, true);
      if (need.kind === 'fetch') {
        runs.push(need.run);
        block = need.run.firstBlock + need.run.slots.length - 1;
      }
    }
  } finally {
    v.lock.release();
  }
  await Promise.all(runs.map((run) => fetchRun(cache, v, run, 'prefetch')));
}
