/**
 * Recovery: a cache that opens a cache file another cache left (closed, or killed at any
 * instruction) turns its records back into a working cache before any thread uses it.
 * It runs once, on the creating thread, before the tables are shared.
 *
 * What a record may be in, and what becomes of it:
 * - A vnode record whose identity is whole (the first word is written last) and matches
 *   its identitySeal (layout.ts) is kept, its
 *   lock and every mark of work in flight cleared (the threads that held them are gone),
 *   its status stale (the first use fetches one) and RESTORED (seal.ts). A truncation
 *   that a store was carrying when the process died is pending again.
 * - A buffer Busy (a fetch that never filled it) is emptied. A dirty or storing one keeps
 *   its bytes as dirty: write(2) acknowledged them, and they are stored before anything
 *   else (CacheManager.storeRestored). A clean one is RESTORED: kept, never served
 *   until seal.ts checks it.
 * - Anything that does not add up (an identity naming no kept record or another
 *   generation, a second record for the same name, a dirty range outside its block) is
 *   emptied and counted in `dropped`, never served or stored.
 *
 * The dirty lists, dirty counts and cached counts are rebuilt from the buffers, not
 * trusted from the records.
 */

import { Fid } from '../core/fid.js';
import type { RefTable } from '../core/ref-table.js';
import {
  BufferState,
  HEADER_I32,
  HeaderI32,
  VNODE_CHANGED_UNDER_DIRTY,
  VNODE_DIRTY_HELD,
  VNODE_F64,
  VNODE_I32,
  VNODE_LENGTH_SET,
  VNODE_RESTORED,
  VnodeF64,
  VnodeI32,
  identityChecksum,
  type CacheViews,
} from './layout.js';

export interface RestoredCache {
  /** Vnode records kept. */
  readonly vnodes: number;
  /** Clean buffers kept, to be checked at their file's first status. */
  readonly cleanBuffers: number;
  /** Dirty buffers kept: acknowledged bytes still to store. */
  readonly dirtyBuffers: number;
  /** Files with dirty buffers. */
  readonly dirtyFids: readonly Fid[];
  /** Records that did not add up and were emptied. */
  readonly dropped: number;
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const plausibleLength = (x: number): boolean => Number.isInteger(x) && x >= 0 && x <= MAX_SAFE;

/** Rebuilds `vnodes` and `buffers` (new, unused tables) from the records in `v`. */
export function recoverCache(v: CacheViews, vnodes: RefTable, buffers: RefTable, blockSize: number): RestoredCache {
  const I = v.vnodeI32;
  const F = v.vnodeF64;
  const H = v.headers;
  const maxVnodes = I.length / VNODE_I32;
  const bufferCount = v.versions.length;
  let dropped = 0;
  let kept = 0;
  const live = new Uint8Array(maxVnodes);
  // Whether the record said it had unstored changes: a buffer that says it is dirty
  // counts only then (the write that set one without the other never returned).
  const hadUnstored = new Uint8Array(maxVnodes);

  for (let slot = 0; slot < maxVnodes; slot++) {
    const i = slot * VNODE_I32;
    const f = slot * VNODE_F64;
    const id = I.subarray(i + VnodeI32.Identity, i + VnodeI32.Identity + 4);
    // Whoever held the lock is gone, live record or not: a record made in this slot
    // later starts from an unlocked word.
    I[i + VnodeI32.Lock] = 0;
    I[i + VnodeI32.WriteSeq] = 0;
    if (id[0] === -1) {
      id.fill(-1);
      continue;
    }
    const lengthsOk = plausibleLength(F[f + VnodeF64.Length]!) && plausibleLength(F[f + VnodeF64.ServerLength]!) &&
      (F[f + VnodeF64.TruncPos] === Infinity || plausibleLength(F[f + VnodeF64.TruncPos]!)) &&
      (F[f + VnodeF64.InFlightTruncPos] === Infinity || plausibleLength(F[f + VnodeF64.InFlightTruncPos]!));
    const sealed = I[i + VnodeI32.IdentitySeal] === identityChecksum(id[0]!, id[1]!, id[2]!, id[3]!, I[i + VnodeI32.Generation]!);
    if (!sealed || !lengthsOk || !vnodes.restoreKey(slot, id[0]!, id[1]!, id[2]!, id[3]!, false)) {
      id.fill(-1);
      dropped++;
      continue;
    }
    live[slot] = 1;
    kept++;
    if ((I[i + VnodeI32.Flags]! & VNODE_DIRTY_HELD) !== 0 || I[i + VnodeI32.StoresInFlight]! > 0) hadUnstored[slot] = 1;
    F[f + VnodeF64.TruncPos] = Math.min(F[f + VnodeF64.TruncPos]!, F[f + VnodeF64.InFlightTruncPos]!);
    F[f + VnodeF64.InFlightTruncPos] = Infinity;
    I[i + VnodeI32.BreakSeq] = 0;
    I[i + VnodeI32.StatusSeq] = -1;
    I[i + VnodeI32.DirtyHead] = -1;
    I[i + VnodeI32.DirtyCount] = 0;
    I[i + VnodeI32.StoresInFlight] = 0;
    I[i + VnodeI32.StoreOwner] = 0;
    I[i + VnodeI32.Cached] = 0;
    I[i + VnodeI32.StoreErrorSeq] = 0;
    I[i + VnodeI32.StoreErrno] = 0;
    I[i + VnodeI32.Flags] = (I[i + VnodeI32.Flags]! & (VNODE_CHANGED_UNDER_DIRTY | VNODE_LENGTH_SET)) | VNODE_RESTORED;
  }

  let clean = 0;
  let dirty = 0;
  for (let slot = 0; slot < bufferCount; slot++) {
    const h = slot * HEADER_I32;
    const state = H[h + HeaderI32.State]!;
    const owner = H[h + HeaderI32.Identity]!;
    if (state === 0 && owner === -1) continue;
    const empty = (): void => {
      H[h + HeaderI32.State] = 0;
      H.fill(-1, h + HeaderI32.Identity, h + HeaderI32.Identity + 4);
    };
    if (state === 0 || owner === -1 || (state & BufferState.Busy) !== 0) {
      empty();
      continue;
    }
    const lo = H[h + HeaderI32.DirtyLo]!;
    const hi = H[h + HeaderI32.DirtyHi]!;
    const isDirty = (state & (BufferState.Dirty | BufferState.Storing)) !== 0;
    const ownerOk = owner >= 0 && owner < maxVnodes && live[owner] === 1 &&
      H[h + HeaderI32.Identity + 1] === I[owner * VNODE_I32 + VnodeI32.Generation];
    const rangeOk = !isDirty || (hadUnstored[owner] === 1 && lo >= 0 && lo < hi && hi <= blockSize);
    const cleanOk = isDirty || ((state & (BufferState.Valid | BufferState.Restored)) !== 0 && v.seals !== undefined && Number.isFinite(v.versions[slot]!));
    if (!ownerOk || !rangeOk || !cleanOk ||
        !buffers.restoreKey(slot, owner, H[h + HeaderI32.Identity + 1]!, H[h + HeaderI32.Identity + 2]!, H[h + HeaderI32.Identity + 3]!, isDirty)) {
      empty();
      dropped++;
      continue;
    }
    if (!isDirty) {
      H[h + HeaderI32.State] = BufferState.Restored;
      clean++;
      continue;
    }
    // Dirty again, at the head of its file's rebuilt dirty list.
    const i = owner * VNODE_I32;
    H[h + HeaderI32.State] = BufferState.Valid | BufferState.Dirty;
    const head = I[i + VnodeI32.DirtyHead]!;
    H[h + HeaderI32.DirtyNext] = head;
    H[h + HeaderI32.DirtyPrev] = -1;
    if (head >= 0) H[head * HEADER_I32 + HeaderI32.DirtyPrev] = slot;
    I[i + VnodeI32.DirtyHead] = slot;
    I[i + VnodeI32.DirtyCount]!++;
    I[i + VnodeI32.Cached]!++;
    dirty++;
  }

  // A file with dirty buffers (or a truncation or length set to store) holds itself, as
  // markVnodeDirty does: one disowned reference, taken through this thread's holder.
  const dirtyFids: Fid[] = [];
  for (let slot = 0; slot < maxVnodes; slot++) {
    if (live[slot] === 0) continue;
    const i = slot * VNODE_I32;
    const f = slot * VNODE_F64;
    const unstored = hadUnstored[slot] === 1 &&
      (I[i + VnodeI32.DirtyCount]! > 0 || F[f + VnodeF64.TruncPos] !== Infinity || (I[i + VnodeI32.Flags]! & VNODE_LENGTH_SET) !== 0);
    if (!unstored) continue;
    const fid = new Fid(I[i + VnodeI32.Identity]! >>> 0, I[i + VnodeI32.Identity + 1]! >>> 0, I[i + VnodeI32.Identity + 2]! >>> 0, I[i + VnodeI32.Identity + 3]! >>> 0);
    const held = vnodes.findHold(fid);
    vnodes.disown(held);
    I[i + VnodeI32.Flags] = I[i + VnodeI32.Flags]! | VNODE_DIRTY_HELD;
    dirtyFids.push(fid);
  }
  return { vnodes: kept, cleanBuffers: clean, dirtyBuffers: dirty, dirtyFids, dropped };
}
