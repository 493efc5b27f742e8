/**
 * Reclaiming a store batch that did not reach the server: the part of it a failed store
 * RPC left, or the whole batch of a thread that exited before the server answered (a
 * terminated worker). After a transient failure nothing in such a batch is lost: it
 * becomes dirty again and goes in the next store. After a permanent one (store-error.ts)
 * it leaves the cache, salvaged (salvage.ts), and the failure is recorded on the vnode.
 *
 * Owns: the way back from Storing to Dirty, for buffers, the pending truncation and the
 * vnode's dirty hold.
 *
 * Invariants:
 * - Every function here runs under the write lock of the batch's vnode.
 * - A buffer in a batch carries the batch's hold; coming back, that hold becomes its
 *   dirty hold again, or is dropped if the buffer was written again meanwhile (it then
 *   has a newer dirty hold) or truncated away.
 * - Sending a returned truncation twice is harmless: everything written past it since
 *   is dirty again too.
 */

import { forEachBufferOf, isValid, linkDirty } from './buffers.js';
import { assertWriteLocked, type CacheContext, type Vnode } from './context.js';
import { BufferState, HEADER_I32, HeaderI32, VNODE_CHANGED_UNDER_DIRTY, VNODE_DIRTY_HELD, VNODE_LENGTH_SET, VnodeF64, VnodeI32 } from './layout.js';

/** Under the write lock: the thread storing v's batch exited; the batch is dirty again. */
export function reclaimBatchOfDeadThread(cache: CacheContext, v: Vnode): void {
  assertWriteLocked(v, 'reclaimBatchOfDeadThread');
  forEachBufferOf(cache, v, 0, Infinity, (slot, state) => {
    if ((state & BufferState.Storing) !== 0) returnToDirty(cache, v, slot);
  });
  Atomics.store(cache.v.vnodeI32, v.i + VnodeI32.StoresInFlight, 0);
  // (A conflict that batch knew of, and the server would not see again, is forgotten.)
  returnTruncation(cache, v);
  returnVnodeHold(cache, v);
  cache.v.count('batchesReclaimed');
}

/**
 * Under the write lock: a store failed with `rpcsLeft` of its RPCs unanswered; `slots`
 * are the buffers those RPCs carried.
 */
export function returnUnstored(
  cache: CacheContext,
  v: Vnode,
  slots: readonly number[],
  rpcsLeft: number,
  conflict: boolean,
  lengthSet: boolean,
): void {
  assertWriteLocked(v, 'returnUnstored');
  for (const slot of slots) returnToDirty(cache, v, slot);
  const flags = (conflict ? VNODE_CHANGED_UNDER_DIRTY : 0) | (lengthSet ? VNODE_LENGTH_SET : 0);
  if (flags !== 0) Atomics.or(cache.v.vnodeI32, v.i + VnodeI32.Flags, flags);
  Atomics.sub(cache.v.vnodeI32, v.i + VnodeI32.StoresInFlight, rpcsLeft);
  returnTruncation(cache, v);
  returnVnodeHold(cache, v);
}

/**
 * Under the write lock: a store failed for good with `errno` (the caller salvages the
 * bytes); `slots` are the buffers its unanswered RPCs carried. They leave the cache
 * (what the server has is what the file is now, so its clean buffers go too), the
 * batch's truncation is dropped, the failure is recorded for every handle to see once
 * (storeErrorSeq), and the status is no longer current, so the next look at the file
 * asks the server.
 */
export function dropRefused(cache: CacheContext, v: Vnode, slots: readonly number[], rpcsLeft: number, errno: number): void {
  assertWriteLocked(v, 'dropRefused');
  const H = cache.v.headers;
  const I = cache.v.vnodeI32;
  for (const slot of slots) {
    const hs = slot * HEADER_I32 + HeaderI32.State;
    const state = Atomics.and(H, hs, ~BufferState.Storing);
    // Written again meanwhile: the newer bytes keep their own dirty hold and go in the
    // next store (refused too, if the file is gone, and then salvaged in their turn).
    if ((state & BufferState.Dirty) === 0) {
      if ((state & BufferState.Valid) !== 0) Atomics.sub(I, v.i + VnodeI32.Cached, 1);
      Atomics.store(H, hs, 0);
    }
    cache.buffers.releaseDisowned(slot); // the batch's hold
  }
  Atomics.sub(I, v.i + VnodeI32.StoresInFlight, rpcsLeft);
  cache.v.vnodeF64[v.f + VnodeF64.InFlightTruncPos] = Infinity;
  cache.vnodes.releaseDisowned(v.slot); // the batch's hold on the vnode
  // Clean buffers may hold what the refused changes made of them (the zeroed tail of a
  // truncation that never reached the server): none of them is trusted any more.
  forEachBufferOf(cache, v, 0, Infinity, (slot, state) => {
    if ((state & (BufferState.Dirty | BufferState.Busy | BufferState.Storing)) !== 0 || (state & BufferState.Valid) === 0) return;
    if (isValid(cache, v, slot, state)) Atomics.sub(I, v.i + VnodeI32.Cached, 1);
    Atomics.store(H, slot * HEADER_I32 + HeaderI32.State, 0);
  });
  // With nothing of ours left unstored, the file is what the server has, length too.
  if ((Atomics.load(I, v.i + VnodeI32.Flags) & VNODE_DIRTY_HELD) === 0 && Atomics.load(I, v.i + VnodeI32.StoresInFlight) === 0) {
    cache.v.vnodeF64[v.f + VnodeF64.Length] = cache.v.vnodeF64[v.f + VnodeF64.ServerLength]!;
  }
  Atomics.store(I, v.i + VnodeI32.StoreErrno, errno);
  Atomics.store(I, v.i + VnodeI32.StoreErrorSeq, cache.v.nextStoreErrorSeq());
  Atomics.store(I, v.i + VnodeI32.StatusSeq, -1);
  cache.v.count('storesRefused');
}

/** The batch's truncation, which the server may not have applied, is pending again. */
function returnTruncation(cache: CacheContext, v: Vnode): void {
  const F = cache.v.vnodeF64;
  F[v.f + VnodeF64.TruncPos] = Math.min(F[v.f + VnodeF64.TruncPos]!, F[v.f + VnodeF64.InFlightTruncPos]!);
  F[v.f + VnodeF64.InFlightTruncPos] = Infinity;
}

/** A buffer of an unanswered store batch is dirty again. */
function returnToDirty(cache: CacheContext, v: Vnode, slot: number): void {
  const H = cache.v.headers;
  const hs = slot * HEADER_I32 + HeaderI32.State;
  const state = Atomics.and(H, hs, ~BufferState.Storing);
  if ((state & BufferState.Dirty) !== 0) {
    cache.buffers.releaseDisowned(slot); // written again meanwhile: it has a newer hold
  } else if ((state & BufferState.Valid) !== 0) {
    linkDirty(cache, v, slot); // the batch's hold becomes the dirty hold again
    Atomics.or(H, hs, BufferState.Dirty);
  } else {
    cache.buffers.releaseDisowned(slot); // truncated away meanwhile
  }
}

/** The batch's hold on the vnode goes back to the dirty file. */
function returnVnodeHold(cache: CacheContext, v: Vnode): void {
  const I = cache.v.vnodeI32;
  const flags = Atomics.load(I, v.i + VnodeI32.Flags);
  if ((flags & VNODE_DIRTY_HELD) !== 0) cache.vnodes.releaseDisowned(v.slot);
  else Atomics.or(I, v.i + VnodeI32.Flags, VNODE_DIRTY_HELD);
}
