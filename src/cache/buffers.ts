/**
 * Buffers (OpenAFS's cm_buf): one block of one file, found in the buffer RefTable by
 * (vnode slot, vnode generation, block number), with a header, a version and a data
 * block in shared memory.
 *
 * Owns: the buffer header (state, identity, dirty links), versions and data, and the
 * vnode record's cached count and dirty list (dirtyHead, dirtyCount).
 *
 * Invariants:
 * - A buffer is used only while held and only once its identity names the caller's
 *   (vnode, generation, block): the creating thread writes the identity last.
 * - A buffer is valid for v iff it is dirty or storing (our bytes are newer than the
 *   server's), or it is Valid and its version lies in v's range
 *   [bufDataVersionLow, dataVersion].
 * - cached counts v's buffers that are valid now; a buffer recycled for another file
 *   first leaves its old file's count.
 * - A dirty buffer carries a disowned reference (the dirty hold) and is on its vnode's
 *   dirty list exactly while its Dirty bit is set; the hold is dropped once it is stored
 *   or truncated away, never by a thread's exit.
 */

import { assertLocked, assertWriteLocked, type CacheContext, type Vnode } from './context.js';
import { BufferState, HEADER_I32, HeaderI32, VNODE_F64, VNODE_I32, VnodeF64, VnodeI32, blockOf, identityIs, storeIdentity } from './layout.js';
import { FULL, RETRY, type Need } from './need.js';
import { isBufferValid } from './version-range.js';

/** Holds the buffer for block `block` of v, or returns why not. Caller releases it. */
export function holdBuffer(cache: CacheContext, v: Vnode, block: number): number | Need {
  let slot: number;
  try {
    slot = cache.buffers.getHoldKey(v.slot, v.gen, block >>> 0, Math.floor(block / 2 ** 32));
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_CMKIT_TABLE_FULL') return FULL;
    throw e;
  }
  if (cache.buffers.created) initBuffer(cache, slot, v, block);
  if (!identityIs(cache.v.headers, slot * HEADER_I32 + HeaderI32.Identity, v.slot, v.gen, block >>> 0, Math.floor(block / 2 ** 32))) {
    cache.buffers.release(slot); // still being set up by the thread that created it
    return RETRY;
  }
  return slot;
}

function initBuffer(cache: CacheContext, slot: number, v: Vnode, block: number): void {
  const H = cache.v.headers;
  const h = slot * HEADER_I32;
  forgetPreviousOwner(cache, slot);
  Atomics.store(H, h + HeaderI32.State, 0);
  Atomics.store(H, h + HeaderI32.DirtyNext, -1);
  Atomics.store(H, h + HeaderI32.DirtyPrev, -1);
  Atomics.store(H, h + HeaderI32.DirtyLo, 0);
  Atomics.store(H, h + HeaderI32.DirtyHi, 0);
  cache.v.versions[slot] = -1;
  storeIdentity(H, h + HeaderI32.Identity, v.slot, v.gen, block >>> 0, Math.floor(block / 2 ** 32));
}

/** A recycled buffer no longer counts among its previous file's cached buffers. */
function forgetPreviousOwner(cache: CacheContext, slot: number): void {
  const H = cache.v.headers;
  const h = slot * HEADER_I32;
  const state = Atomics.load(H, h + HeaderI32.State);
  const owner = Atomics.load(H, h + HeaderI32.Identity);
  if ((state & BufferState.Valid) === 0 || owner < 0 || owner * VNODE_I32 >= cache.v.vnodeI32.length) return;
  const I = cache.v.vnodeI32;
  const i = owner * VNODE_I32;
  if (Atomics.load(I, i + VnodeI32.Generation) !== Atomics.load(H, h + HeaderI32.Identity + 1)) return;
  const F = cache.v.vnodeF64;
  const f = owner * VNODE_F64;
  if (isBufferValid(F[f + VnodeF64.BufDataVersionLow]!, cache.v.versions[slot]!, F[f + VnodeF64.DataVersion]!)) {
    Atomics.sub(I, i + VnodeI32.Cached, 1);
  }
}

/** Under the vnode lock: a buffer of v just became valid (+1) or stopped being (-1). */
export function countCached(cache: CacheContext, v: Vnode, delta: number): void {
  assertLocked(v, 'countCached');
  Atomics.add(cache.v.vnodeI32, v.i + VnodeI32.Cached, delta);
}

export function dirtyCount(cache: CacheContext, v: Vnode): number {
  return Atomics.load(cache.v.vnodeI32, v.i + VnodeI32.DirtyCount);
}

/** Whether buffer `slot`, in `state`, holds bytes v may serve (see the invariants). */
export function isValid(cache: CacheContext, v: Vnode, slot: number, state: number): boolean {
  // Dirty, or in a store not yet answered: our bytes are newer than the server's, so
  // no version the server reports may send the buffer to be fetched again.
  if ((state & (BufferState.Dirty | BufferState.Storing)) !== 0) return true;
  if ((state & BufferState.Valid) === 0) return false;
  const F = cache.v.vnodeF64;
  return isBufferValid(F[v.f + VnodeF64.BufDataVersionLow]!, cache.v.versions[slot]!, F[v.f + VnodeF64.DataVersion]!);
}

/**
 * Calls fn(slot, state) for each buffer of v holding a block in [fromBlock, toBlock),
 * held for the call. Looks the blocks up when they are fewer than the buffers, and
 * scans every header otherwise, so the cost is bounded by the smaller of the two.
 */
export function forEachBufferOf(
  cache: CacheContext,
  v: Vnode,
  fromBlock: number,
  toBlock: number,
  fn: (slot: number, state: number) => void,
): void {
  const H = cache.v.headers;
  const buffers = cache.buffers;
  if (toBlock - fromBlock <= cache.bufferCount) {
    for (let block = fromBlock; block < toBlock; block++) {
      const slot = buffers.findHoldKey(v.slot, v.gen, block >>> 0, Math.floor(block / 2 ** 32));
      if (slot < 0) continue;
      if (identityIs(H, slot * HEADER_I32 + HeaderI32.Identity, v.slot, v.gen, block >>> 0, Math.floor(block / 2 ** 32))) {
        fn(slot, Atomics.load(H, slot * HEADER_I32 + HeaderI32.State));
      }
      buffers.release(slot);
    }
    return;
  }
  for (let slot = 0; slot < cache.bufferCount; slot++) {
    const h = slot * HEADER_I32;
    if (Atomics.load(H, h + HeaderI32.Identity) !== v.slot || Atomics.load(H, h + HeaderI32.Identity + 1) !== v.gen) continue;
    const block = blockOf(H, h);
    if (block < fromBlock || block >= toBlock) continue;
    // Hold it so it cannot be recycled under us, then check it is still this block.
    const held = buffers.findHoldKey(v.slot, v.gen, block >>> 0, Math.floor(block / 2 ** 32));
    if (held === slot) fn(slot, Atomics.load(H, h + HeaderI32.State));
    if (held >= 0) buffers.release(held);
  }
}

/** Under the write lock: puts buffer `slot` on v's dirty list. */
export function linkDirty(cache: CacheContext, v: Vnode, slot: number): void {
  assertWriteLocked(v, 'linkDirty');
  const H = cache.v.headers;
  const I = cache.v.vnodeI32;
  const head = Atomics.load(I, v.i + VnodeI32.DirtyHead);
  Atomics.store(H, slot * HEADER_I32 + HeaderI32.DirtyNext, head);
  Atomics.store(H, slot * HEADER_I32 + HeaderI32.DirtyPrev, -1);
  if (head >= 0) Atomics.store(H, head * HEADER_I32 + HeaderI32.DirtyPrev, slot);
  Atomics.store(I, v.i + VnodeI32.DirtyHead, slot);
  Atomics.add(I, v.i + VnodeI32.DirtyCount, 1);
}

/** Under the write lock: takes buffer `slot` off v's dirty list. */
export function unlinkDirty(cache: CacheContext, v: Vnode, slot: number): void {
  assertWriteLocked(v, 'unlinkDirty');
  const H = cache.v.headers;
  const h = slot * HEADER_I32;
  const next = Atomics.load(H, h + HeaderI32.DirtyNext);
  const prev = Atomics.load(H, h + HeaderI32.DirtyPrev);
  if (prev >= 0) Atomics.store(H, prev * HEADER_I32 + HeaderI32.DirtyNext, next);
  else Atomics.store(cache.v.vnodeI32, v.i + VnodeI32.DirtyHead, next);
  if (next >= 0) Atomics.store(H, next * HEADER_I32 + HeaderI32.DirtyPrev, prev);
  Atomics.store(H, h + HeaderI32.DirtyNext, -1);
  Atomics.store(H, h + HeaderI32.DirtyPrev, -1);
  Atomics.sub(cache.v.vnodeI32, v.i + VnodeI32.DirtyCount, 1);
}

/**
 * Zeroes data[from, to), at most one block. TypedArray fill on shared memory takes a
 * slow path in V8 (about 5x a copy); copying from a zero block does not.
 */
export function zero(cache: CacheContext, from: number, to: number): void {
  if (to > from) cache.v.data.set(cache.zeros.subarray(0, to - from), from);
}

/** Counts the first read of a block that prefetch brought in (header state word `hs`). */
export function notePrefetchUse(cache: CacheContext, hs: number, state: number): void {
  if ((state & BufferState.Prefetched) !== 0 &&
      Atomics.compareExchange(cache.v.headers, hs, state, state & ~BufferState.Prefetched) === state) {
    cache.v.count('prefetchBlocksUsed');
  }
}

/** Under the write lock: drops v's clean buffers nobody else holds; how many. */
export function evictClean(cache: CacheContext, v: Vnode): number {
  assertWriteLocked(v, 'evictClean');
  let dropped = 0;
  forEachBufferOf(cache, v, 0, Infinity, (slot, state) => {
    if ((state & (BufferState.Dirty | BufferState.Busy)) !== 0 || (state & BufferState.Valid) === 0) return;
    // Held by someone besides us (a store in flight keeps its buffers held until the
    // server has them): not ours to drop.
    if (cache.buffers.refCount(slot) > 1) return;
    if (isValid(cache, v, slot, state)) countCached(cache, v, -1);
    Atomics.store(cache.v.headers, slot * HEADER_I32 + HeaderI32.State, 0);
    dropped++;
  });
  return dropped;
}
