/**
 * Fetching (the fetch half of OpenAFS's cm_dcache): claiming a run of blocks that need
 * the server's bytes, and filling them with one fetchData RPC.
 *
 * Owns: the Busy state of a claimed buffer, from the claim to the fill.
 *
 * Invariants:
 * - A buffer is claimed by one CAS of its state word to this thread's Busy mark, under
 *   the vnode lock; a claimed buffer stays held until fetchRun ends, and fetchRun always
 *   ends its Busy state (filled, or back to empty) and wakes whoever waits on it.
 * - A run never crosses a chunk boundary, the zero point or the file's length, and
 *   stops at the first block that is valid or busy. It goes past the request only for a
 *   sequential reader (and prefetch): a random read fetches the blocks it touches.
 * - Bytes are kept only if the server's answer is of the version the vnode now holds;
 *   past the zero point a filled buffer holds zeros, whatever the server sent.
 */

import { threadToken } from '../core/threads.js';
import type { FetchResult } from '../server/file-server.js';
import { countCached, holdBuffer, isValid, zero } from './buffers.js';
import { assertLocked, rpc, vnodeHandle, type CacheContext, type Origin, type Vnode } from './context.js';
import { BufferState, HEADER_I32, HeaderI32, VnodeF64, busyState } from './layout.js';
import { RETRY, type Need, type Run } from './need.js';
import { sealFilled } from './seal.js';
import { applyServerVersion, zeroPoint } from './vnode-status.js';

/** How this thread marks the buffers it claims. */
export const CLAIMED = busyState(threadToken);

/**
 * Under the vnode lock: claims `first` (held, not valid, not busy) and the blocks after
 * it up to the end of its chunk, the zero point or the first that is valid or busy, and
 * no further than `requestEnd` (a byte offset) unless `wholeChunk` (a sequential
 * reader's miss, or prefetch; never with prefetch off): rounding a miss up to its chunk
 * is readahead, which a random reader pays for and never uses. The claimed buffers stay
 * held and Busy until fetchRun ends.
 */
export function claimRun(
  cache: CacheContext,
  v: Vnode,
  firstBlock: number,
  firstSlot: number,
  firstState: number,
  requestEnd: number,
  wholeChunk: boolean,
): Need {
  assertLocked(v, 'claimRun');
  const hs = firstSlot * HEADER_I32 + HeaderI32.State;
  if (Atomics.compareExchange(cache.v.headers, hs, firstState, CLAIMED) !== firstState) {
    cache.buffers.release(firstSlot);
    return RETRY;
  }
  const slots = [firstSlot];
  const chunk = cache.chunkBlocks;
  const limit = Math.min(
    (Math.floor(firstBlock / chunk) + 1) * chunk,
    Math.ceil(Math.min(zeroPoint(cache, v), cache.v.vnodeF64[v.f + VnodeF64.Length]!) / cache.blockSize),
    wholeChunk && cache.prefetch ? Infinity : Math.ceil(requestEnd / cache.blockSize),
  );
  for (let block = firstBlock + 1; block < limit; block++) {
    if (!claimNext(cache, v, block, slots)) break;
  }
  return { kind: 'fetch', run: { firstBlock, slots } };
}

/** Claims one more block for a run; false (claiming nothing) if it is valid or busy. */
function claimNext(cache: CacheContext, v: Vnode, block: number, slots: number[]): boolean {
  const held = holdBuffer(cache, v, block);
  if (typeof held !== 'number') return false;
  const H = cache.v.headers;
  const hs = held * HEADER_I32 + HeaderI32.State;
  const state = Atomics.load(H, hs);
  if ((state & BufferState.Busy) !== 0 || isValid(cache, v, held, state) ||
      Atomics.compareExchange(H, hs, state, CLAIMED) !== state) {
    cache.buffers.release(held);
    return false;
  }
  slots.push(held);
  return true;
}

/** Fetches a claimed run and fills its buffers; always ends their Busy state. */
export async function fetchRun(cache: CacheContext, v: Vnode, run: Run, origin: Origin): Promise<void> {
  const bs = cache.blockSize;
  const H = cache.v.headers;
  const start = run.firstBlock * bs;
  const prefetched = origin === 'prefetch';
  cache.v.count('fetchRpcs');
  if (prefetched) {
    cache.v.count('prefetchesIssued');
    cache.v.count('prefetchBlocks', run.slots.length);
  }
  let filled = false;
  cache.trace.fetch(v.fid, start, run.slots.length * bs);
  try {
    const fetch = (): Promise<FetchResult> => cache.server.fetchData(v.fid, start, run.slots.length * bs);
    const result = await rpc(cache, fetch, origin);
    cache.v.count('fetchBytes', result.data.length);
    // A holder of its own: the runs of one prefetch window fill concurrently.
    const filling = vnodeHandle(cache, v.fid, v.slot, v.gen);
    await filling.lock.writeAsync();
    try {
      applyServerVersion(cache, filling, result.dataVersion, result.length);
      // Bytes served before a store of ours that has since landed may predate it (a
      // truncation it carried, say): keep only what is of the current version.
      if (result.dataVersion !== cache.v.vnodeF64[v.f + VnodeF64.DataVersion]) return;
      const zeroAt = zeroPoint(cache, filling);
      const data = cache.v.data;
      run.slots.forEach((slot, k) => {
        const base = slot * bs;
        const blockStart = start + k * bs;
        const got = Math.max(0, Math.min(bs, result.data.length - k * bs, zeroAt - blockStart));
        data.set(result.data.subarray(k * bs, k * bs + got), base);
        zero(cache, base + got, base + bs);
        cache.v.versions[slot] = result.dataVersion;
        sealFilled(cache, filling, run.firstBlock + k, result.dataVersion, slot);
        const state = BufferState.Valid | (prefetched ? BufferState.Prefetched : 0);
        Atomics.store(H, slot * HEADER_I32 + HeaderI32.State, state);
        if (isValid(cache, filling, slot, state)) countCached(cache, filling, 1);
      });
      filled = true;
    } finally {
      filling.lock.release();
    }
  } finally {
    for (const slot of run.slots) {
      if (!filled) Atomics.store(H, slot * HEADER_I32 + HeaderI32.State, 0);
      Atomics.notify(H, slot * HEADER_I32 + HeaderI32.State);
      cache.buffers.release(slot);
    }
  }
}
