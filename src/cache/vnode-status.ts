/**
 * Vnode status (OpenAFS's cm_scache): finding a file's record, setting it up, and keeping
 * what it says of the server's file current.
 *
 * Owns: the vnode record's status fields (dataVersion, bufDataVersionLow, length,
 * serverLength, statusSeq, breakSeq) and the record's own dirty hold (DIRTY_HELD).
 *
 * Invariants:
 * - A record is used only once its identity names the caller's Fid: the creating thread
 *   writes the identity last, and a thread that finds the entry earlier waits for it.
 * - The status is current iff statusSeq == breakSeq and dataVersion >= 0. A callback
 *   break only bumps breakSeq, so a status fetched while a break arrived is stale at once.
 * - While the record has unstored changes (DIRTY_HELD) it holds a disowned reference on
 *   itself, so neither a thread's exit nor the table's recycler can drop it.
 */

import { setImmediate as nextTurn } from 'node:timers/promises';

import type { Fid } from '../core/fid.js';
import type { FileStatus } from '../server/file-server.js';
import { dirtyCount } from './buffers.js';
import { assertWriteLocked, rpc, vnodeHandle, type CacheContext, type Origin, type Vnode } from './context.js';
import { VNODE_CHANGED_UNDER_DIRTY, VNODE_DIRTY_HELD, VNODE_F64, VNODE_I32, VnodeF64, VnodeI32, identityChecksum, identityIs, storeIdentity } from './layout.js';
import { settleRestored } from './seal.js';
import { nextRange } from './version-range.js';

/** Runs `op` on fid's vnode, held (and so never recycled) until `op` settles. */
export async function withVnode<T>(cache: CacheContext, fid: Fid, op: (v: Vnode) => Promise<T>): Promise<T> {
  const v = await openVnode(cache, fid);
  try {
    return await op(v);
  } finally {
    cache.vnodes.release(v.slot);
  }
}

async function openVnode(cache: CacheContext, fid: Fid): Promise<Vnode> {
  const slot = cache.vnodes.getHold(fid, (s) => initVnode(cache, s, fid));
  const I = cache.v.vnodeI32;
  const i = slot * VNODE_I32;
  // The entry is ours to hold, but the thread that created it may still be writing the
  // record; its identity is written last.
  while (!identityIs(I, i + VnodeI32.Identity, fid.cell, fid.volume, fid.vnode, fid.unique)) await nextTurn();
  return vnodeHandle(cache, fid, slot, Atomics.load(I, i + VnodeI32.Generation));
}

function initVnode(cache: CacheContext, slot: number, fid: Fid): void {
  const F = cache.v.vnodeF64;
  const I = cache.v.vnodeI32;
  const f = slot * VNODE_F64;
  const i = slot * VNODE_I32;
  F[f + VnodeF64.DataVersion] = -1;
  F[f + VnodeF64.BufDataVersionLow] = 0;
  F[f + VnodeF64.Length] = 0;
  F[f + VnodeF64.ServerLength] = 0;
  F[f + VnodeF64.TruncPos] = Infinity;
  F[f + VnodeF64.InFlightTruncPos] = Infinity;
  Atomics.store(I, i + VnodeI32.BreakSeq, 0);
  Atomics.store(I, i + VnodeI32.StatusSeq, -1);
  Atomics.store(I, i + VnodeI32.DirtyHead, -1);
  Atomics.store(I, i + VnodeI32.StoresInFlight, 0);
  Atomics.store(I, i + VnodeI32.Flags, 0);
  Atomics.store(I, i + VnodeI32.Cached, 0);
  Atomics.store(I, i + VnodeI32.DirtyCount, 0);
  Atomics.store(I, i + VnodeI32.StoreErrorSeq, 0);
  Atomics.store(I, i + VnodeI32.StoreErrno, 0);
  cache.access.clear(slot);
  const generation = Atomics.add(I, i + VnodeI32.Generation, 1) + 1;
  Atomics.store(I, i + VnodeI32.IdentitySeal, identityChecksum(fid.cell, fid.volume, fid.vnode, fid.unique, generation));
  storeIdentity(I, i + VnodeI32.Identity, fid.cell, fid.volume, fid.vnode, fid.unique);
}

/** The server broke its callback on fid: the status we hold, if any, is no longer current. */
export function callbackBroken(cache: CacheContext, fid: Fid): void {
  if (cache.closed) return;
  const slot = cache.vnodes.findHold(fid);
  if (slot < 0) return;
  const i = slot * VNODE_I32;
  if (identityIs(cache.v.vnodeI32, i + VnodeI32.Identity, fid.cell, fid.volume, fid.vnode, fid.unique)) {
    Atomics.add(cache.v.vnodeI32, i + VnodeI32.BreakSeq, 1);
  }
  cache.vnodes.release(slot);
}

/**
 * Without an RPC or a lock: fid's vnode slot, held, if the cache has a record for fid
 * (-1 otherwise; the caller releases a slot it gets).
 */
function holdRecord(cache: CacheContext, fid: Fid): number {
  const slot = cache.vnodes.findHold(fid);
  if (slot < 0) return -1;
  if (identityIs(cache.v.vnodeI32, slot * VNODE_I32 + VnodeI32.Identity, fid.cell, fid.volume, fid.vnode, fid.unique)) return slot;
  cache.vnodes.release(slot);
  return -1;
}

/** Whether the record's status is current: no callback break since it was fetched. */
function statusCurrent(cache: CacheContext, slot: number): boolean {
  const I = cache.v.vnodeI32;
  const i = slot * VNODE_I32;
  return Atomics.load(I, i + VnodeI32.StatusSeq) === Atomics.load(I, i + VnodeI32.BreakSeq) &&
    cache.v.vnodeF64[slot * VNODE_F64 + VnodeF64.DataVersion]! >= 0;
}

/**
 * Without an RPC or a lock: fid's vnode slot, held, if the cache has it with a current
 * status; -1 otherwise. The caller releases it.
 */
export function holdIfCurrent(cache: CacheContext, fid: Fid): number {
  const slot = holdRecord(cache, fid);
  if (slot < 0 || statusCurrent(cache, slot)) return slot;
  cache.vnodes.release(slot);
  return -1;
}

/**
 * The file's length as this client sees it, if the cache can say without an RPC: its
 * status is current, or it has unstored changes, whose length is the one every read of
 * it uses until they are stored, whatever the server says meanwhile (a store that failed
 * half-way, say). Otherwise undefined.
 */
export function cachedLength(cache: CacheContext, fid: Fid): number | undefined {
  const slot = holdRecord(cache, fid);
  if (slot < 0) return undefined;
  try {
    const I = cache.v.vnodeI32;
    const i = slot * VNODE_I32;
    const unstored = (Atomics.load(I, i + VnodeI32.Flags) & VNODE_DIRTY_HELD) !== 0 || Atomics.load(I, i + VnodeI32.StoresInFlight) > 0;
    return unstored || statusCurrent(cache, slot) ? cache.v.vnodeF64[slot * VNODE_F64 + VnodeF64.Length]! : undefined;
  } finally {
    cache.vnodes.release(slot);
  }
}

/**
 * The last store of fid refused for good, if the cache has its vnode: its cache-wide
 * sequence number (0: none) and errno. A handle that remembers the number it saw reports
 * each failure once, as Linux's errseq_t does for file descriptors. Never an RPC.
 */
export function storeError(cache: CacheContext, fid: Fid): { seq: number; errno: number } {
  const slot = holdRecord(cache, fid);
  if (slot < 0) return { seq: 0, errno: 0 };
  const i = slot * VNODE_I32;
  const I = cache.v.vnodeI32;
  const error = { seq: Atomics.load(I, i + VnodeI32.StoreErrorSeq), errno: Atomics.load(I, i + VnodeI32.StoreErrno) };
  cache.vnodes.release(slot);
  return error;
}

/** Fetches the status unless the one we have is current (no callback break since). */
export async function ensureStatus(cache: CacheContext, v: Vnode, origin: Origin): Promise<void> {
  const I = cache.v.vnodeI32;
  const seq = Atomics.load(I, v.i + VnodeI32.BreakSeq);
  if (Atomics.load(I, v.i + VnodeI32.StatusSeq) === seq && cache.v.vnodeF64[v.f + VnodeF64.DataVersion]! >= 0) return;
  cache.v.count('statusRpcs');
  const status = await rpc(cache, () => cache.server.fetchStatus(v.fid), origin);
  cache.trace.status(v.fid, status.dataVersion, status.length);
  await v.lock.writeAsync();
  try {
    applyServerVersion(cache, v, status.dataVersion, status.length);
    // A break that arrived while we asked leaves the status stale: seq is then behind.
    Atomics.store(I, v.i + VnodeI32.StatusSeq, seq);
  } finally {
    v.lock.release();
  }
}

/** The file's status as this client sees it (length includes unstored writes). */
export async function statVnode(cache: CacheContext, v: Vnode): Promise<FileStatus> {
  await ensureStatus(cache, v, 'stat');
  const F = cache.v.vnodeF64;
  return { dataVersion: F[v.f + VnodeF64.DataVersion]!, length: F[v.f + VnodeF64.Length]! };
}

/** Under the write lock: the server said the file is at `version` with `length`. */
export function applyServerVersion(cache: CacheContext, v: Vnode, version: number, length: number): void {
  assertWriteLocked(v, 'applyServerVersion');
  if (settleRestored(cache, v, version, length)) return;
  const F = cache.v.vnodeF64;
  const I = cache.v.vnodeI32;
  const inFlight = Atomics.load(I, v.i + VnodeI32.StoresInFlight);
  const { range, change } = nextRange(
    { dataVersion: F[v.f + VnodeF64.DataVersion]!, bufDataVersionLow: F[v.f + VnodeF64.BufDataVersionLow]! },
    version,
    inFlight,
  );
  F[v.f + VnodeF64.DataVersion] = range.dataVersion;
  F[v.f + VnodeF64.BufDataVersionLow] = range.bufDataVersionLow;
  if (change === 'theirs') {
    // Every clean buffer just became invalid; only the dirty ones still count.
    Atomics.store(I, v.i + VnodeI32.Cached, dirtyCount(cache, v));
    F[v.f + VnodeF64.ServerLength] = length;
    // Unstored writes and truncations of ours, and those being stored, still decide
    // the length we show; but they were made over a file that has since changed, so
    // their store is a conflict (store.ts).
    if ((Atomics.load(I, v.i + VnodeI32.Flags) & VNODE_DIRTY_HELD) === 0 && inFlight === 0) F[v.f + VnodeF64.Length] = length;
    else Atomics.or(I, v.i + VnodeI32.Flags, VNODE_CHANGED_UNDER_DIRTY);
  }
}

/** The first byte that is never fetched: min(pending truncation, server length). */
export function zeroPoint(cache: CacheContext, v: Vnode): number {
  const F = cache.v.vnodeF64;
  return Math.min(F[v.f + VnodeF64.TruncPos]!, F[v.f + VnodeF64.InFlightTruncPos]!, F[v.f + VnodeF64.ServerLength]!);
}

/** Under the write lock: keeps the vnode (and so its record) held until it is stored. */
export function markVnodeDirty(cache: CacheContext, v: Vnode): void {
  assertWriteLocked(v, 'markVnodeDirty');
  const I = cache.v.vnodeI32;
  const flags = Atomics.load(I, v.i + VnodeI32.Flags);
  if ((flags & VNODE_DIRTY_HELD) !== 0) return;
  // The file's own reference, until it is stored: no thread's, so no thread's exit drops it.
  cache.vnodes.hold(v.slot);
  cache.vnodes.disown(v.slot);
  Atomics.or(I, v.i + VnodeI32.Flags, VNODE_DIRTY_HELD);
}
