/**
 * Storing (the store half of OpenAFS's cm_dcache; netfs's write_issue and write_collect):
 * taking a file's dirty buffers and pending truncation as one batch, sending it in
 * chunk-sized storeData RPCs, and what flush and store-behind wait for.
 *
 * Owns: the batch (Storing buffers, inFlightTruncPos, storesInFlight, storeOwner) from
 * takeDirty until its last RPC is answered or it is returned (reclaim.ts).
 *
 * Invariants:
 * - One batch in flight per file: a block written again while an older batch is stored
 *   must reach the server after it. A batch whose thread exited is reclaimed by the next
 *   store that finds it (storesInFlight).
 * - The vnode's dirty hold passes to the batch with takeDirty; a write during the store
 *   takes a new one. Each buffer's dirty hold passes to the batch too and is dropped once
 *   the RPC that carried it is answered.
 * - flush resolves only once every byte written before it is on the server, and rejects
 *   with the error that kept some from it; what a failed store did not send is dirty
 *   again (returnUnstored).
 */

import { threadAlive, threadToken } from '../core/threads.js';
import type { Fid } from '../core/fid.js';
import type { StoreOptions } from '../server/file-server.js';
import { dirtyCount } from './buffers.js';
import { assertWriteLocked, rpc, schedule, vnodeHandle, type CacheContext, type Origin, type Vnode } from './context.js';
import { BufferState, HEADER_I32, HeaderI32, VNODE_CHANGED_UNDER_DIRTY, VNODE_DIRTY_HELD, VNODE_LENGTH_SET, VNODE_I32, VNODE_STORE_QUEUED, VnodeF64, VnodeI32, blockOf } from './layout.js';
import { dropRefused, reclaimBatchOfDeadThread, returnUnstored } from './reclaim.js';
import { salvage } from './salvage.js';
import { errnoOf, storeFailure } from './store-error.js';
import { applyServerVersion, ensureStatus, withVnode } from './vnode-status.js';

/** Files flushAllDirty stores at once. */
const FLUSH_ALL_PARALLEL = 8;
/** Store calls of one batch in flight at once, after its first. */
const STORE_PARALLEL = 8;

/** One storeData call of a batch: contiguous written bytes, and the buffers they came from. */
interface PendingStore {
  readonly offset: number;
  end: number;
  readonly slots: number[];
  bytes: Uint8Array;
}

interface StoreBatch {
  readonly stores: PendingStore[];
  readonly truncPos: number;
  readonly fileLength: number;
  /** The data version the cache knew when it took the batch: the first call's baseVersion. */
  readonly baseVersion: number;
  /** Someone else changed the file while these changes were unstored. */
  readonly conflict: boolean;
  /** A truncation set fileLength (it then holds over a conflict). */
  readonly lengthSet: boolean;
}

/**
 * Stores v's dirty buffers and pending truncation. A store already in flight (another
 * flush, or store-behind) is waited for first, and what it failed to store is dirty
 * again and goes in ours.
 */
export async function flushVnode(cache: CacheContext, v: Vnode): Promise<void> {
  const I = cache.v.vnodeI32;
  for (;;) {
    const { batch, inFlight } = await takeBatchIf(cache, v, () => (Atomics.load(I, v.i + VnodeI32.Flags) & VNODE_DIRTY_HELD) !== 0);
    if (batch !== undefined) return store(cache, v, batch, 'flush');
    if (inFlight === 0) return;
    await storesAnswered(cache, v, inFlight);
  }
}

/**
 * Flushes every vnode with unstored changes, FLUSH_ALL_PARALLEL at a time; false if there
 * was none. Files are independent: one file's failure holds no other back, and the first
 * error is thrown only once every file has had its store.
 */
export async function flushAllDirty(cache: CacheContext): Promise<boolean> {
  const fids = dirtyFids(cache);
  const errors: unknown[] = [];
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < fids.length) {
      const fid = fids[next++]!;
      await withVnode(cache, fid, (v) => flushVnode(cache, v)).catch((e: unknown) => errors.push(e));
    }
  };
  await Promise.all(Array.from({ length: Math.min(FLUSH_ALL_PARALLEL, fids.length) }, lane));
  if (errors.length > 0) throw errors[0];
  return fids.length > 0;
}

/**
 * Stores the unstored changes a cache file held (recover.ts), each file after one status
 * (so its restored buffers are settled against the server's version first, and a file
 * changed meanwhile makes the store a conflict, as in a live cache). Resolves to how
 * many of the files are clean now; a file whose store failed keeps its data dirty, or
 * salvaged, by the store-error rules.
 */
export async function storeRestored(cache: CacheContext, fids: readonly Fid[]): Promise<number> {
  let clean = 0;
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < fids.length) {
      const fid = fids[next++]!;
      const stored = await withVnode(cache, fid, async (v) => {
        await ensureStatus(cache, v, 'flush').catch(() => undefined);
        await flushVnode(cache, v);
      }).then(() => true, () => false);
      if (stored) clean++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(FLUSH_ALL_PARALLEL, fids.length) }, lane));
  return clean;
}

/** The Fids of every vnode with unstored changes (holding itself: DIRTY_HELD). */
function dirtyFids(cache: CacheContext): Fid[] {
  const I = cache.v.vnodeI32;
  const fids: Fid[] = [];
  for (let slot = 0; slot < I.length / VNODE_I32; slot++) {
    if ((Atomics.load(I, slot * VNODE_I32 + VnodeI32.Flags) & VNODE_DIRTY_HELD) === 0) continue;
    const fid = cache.vnodes.fidAt(slot);
    if (fid !== undefined) fids.push(fid);
  }
  return fids;
}

/**
 * Gives up storing: every file's unstored data goes to the salvage directory and leaves
 * the cache, recorded as a refusal with `errno`. For an operator who has stopped waiting
 * for a server that keeps failing (a second signal to the mount); resolves to the files
 * salvaged. A store in flight is waited for first.
 */
export async function salvageAllDirty(cache: CacheContext, errno: number, reason: string): Promise<number> {
  const I = cache.v.vnodeI32;
  let files = 0;
  for (const fid of dirtyFids(cache)) {
    await withVnode(cache, fid, async (v) => {
      for (;;) {
        const { batch, inFlight } = await takeBatchIf(cache, v, () => (Atomics.load(I, v.i + VnodeI32.Flags) & VNODE_DIRTY_HELD) !== 0);
        if (batch === undefined && inFlight > 0) {
          await storesAnswered(cache, v, inFlight);
          continue;
        }
        if (batch === undefined) return;
        await v.lock.writeAsync();
        try {
          dropRefused(cache, v, batch.stores.flatMap((st) => st.slots), Math.max(1, batch.stores.length), errno);
        } finally {
          v.lock.release();
        }
        Atomics.notify(I, v.i + VnodeI32.StoresInFlight);
        await salvage(cache, v.fid, batch.stores, errno, reason);
        files++;
        return;
      }
    });
  }
  return files;
}

/** After a write: a chunk or more of dirty data is stored in the background. */
export function queueStoreBehind(cache: CacheContext, v: Vnode): void {
  const I = cache.v.vnodeI32;
  if (dirtyCount(cache, v) < cache.chunkBlocks) return;
  if ((Atomics.or(I, v.i + VnodeI32.Flags, VNODE_STORE_QUEUED) & VNODE_STORE_QUEUED) !== 0) return;
  schedule(cache, v, { kind: 'store', fid: v.fid.toJSON() });
}

/**
 * The store-behind job: stores v's dirty data while there is a chunk or more of it,
 * without retries (a busy server fails it; the data stays dirty for flush).
 */
export async function storeBehindVnode(cache: CacheContext, v: Vnode): Promise<void> {
  const I = cache.v.vnodeI32;
  try {
    for (;;) {
      const { batch, inFlight } = await takeBatchIf(cache, v, () => dirtyCount(cache, v) >= cache.chunkBlocks);
      if (batch !== undefined) await store(cache, v, batch, 'store-behind');
      else if (inFlight === 0) return;
      else await storesAnswered(cache, v, inFlight);
    }
  } finally {
    // Cleared after the last look at the dirty count: a write that lands after that
    // look queues a job of its own.
    Atomics.and(I, v.i + VnodeI32.Flags, ~VNODE_STORE_QUEUED);
  }
}

/**
 * Takes v's dirty data as a batch if no store of v is in flight and `wanted()` (asked
 * under the lock) says so; otherwise says how many store RPCs are in flight.
 */
async function takeBatchIf(cache: CacheContext, v: Vnode, wanted: () => boolean): Promise<{ batch?: StoreBatch; inFlight: number }> {
  await v.lock.writeAsync();
  try {
    const inFlight = storesInFlight(cache, v);
    if (inFlight > 0) return { inFlight };
    return wanted() ? { batch: takeDirty(cache, v), inFlight: 0 } : { inFlight: 0 };
  } finally {
    v.lock.release();
  }
}

/** Under the write lock: v's store RPCs not yet answered (a dead thread's batch is reclaimed). */
function storesInFlight(cache: CacheContext, v: Vnode): number {
  const I = cache.v.vnodeI32;
  const inFlight = Atomics.load(I, v.i + VnodeI32.StoresInFlight);
  if (inFlight > 0 && !threadAlive(Atomics.load(I, v.i + VnodeI32.StoreOwner))) {
    reclaimBatchOfDeadThread(cache, v);
    return 0;
  }
  return inFlight;
}

/** Waits, unlocked, until v's store RPCs in flight are no longer `inFlight`. */
async function storesAnswered(cache: CacheContext, v: Vnode, inFlight: number): Promise<void> {
  const r = Atomics.waitAsync(cache.v.vnodeI32, v.i + VnodeI32.StoresInFlight, inFlight, 1000);
  if (r.async) await r.value;
}

/**
 * Under the write lock: takes v's dirty state into a batch of stores: the bytes written
 * (each buffer's dirtyLo..dirtyHi, never the clean bytes around them), in runs of
 * contiguous bytes of at most a chunk.
 */
function takeDirty(cache: CacheContext, v: Vnode): StoreBatch {
  assertWriteLocked(v, 'takeDirty');
  const H = cache.v.headers;
  const I = cache.v.vnodeI32;
  const F = cache.v.vnodeF64;
  const bs = cache.blockSize;
  const slots: number[] = [];
  for (let s = Atomics.load(I, v.i + VnodeI32.DirtyHead); s >= 0; s = Atomics.load(H, s * HEADER_I32 + HeaderI32.DirtyNext)) {
    slots.push(s);
  }
  const length = F[v.f + VnodeF64.Length]!;
  slots.sort((a, b) => blockOf(H, a * HEADER_I32) - blockOf(H, b * HEADER_I32));
  const stores: PendingStore[] = [];
  // Buffers with nothing left to send (truncated away past their bytes) ride along, so
  // that the batch still releases their holds.
  const riders: number[] = [];
  const rangeOf = (slot: number): [number, number] => {
    const h = slot * HEADER_I32;
    const blockStart = blockOf(H, h) * bs;
    return [blockStart + Atomics.load(H, h + HeaderI32.DirtyLo), Math.min(blockStart + Atomics.load(H, h + HeaderI32.DirtyHi), length)];
  };
  for (const slot of slots) {
    const hs = slot * HEADER_I32 + HeaderI32.State;
    Atomics.store(H, hs, (Atomics.load(H, hs) & ~BufferState.Dirty) | BufferState.Storing);
    const [start, end] = rangeOf(slot);
    if (end <= start) {
      riders.push(slot);
      continue;
    }
    const last = stores[stores.length - 1];
    if (last !== undefined && last.end === start && end - last.offset <= cache.chunkBlocks * bs) {
      last.slots.push(slot);
      last.end = end;
    } else {
      stores.push({ offset: start, end, slots: [slot], bytes: new Uint8Array(0) });
    }
  }
  if (riders.length > 0) {
    if (stores.length === 0) stores.push({ offset: 0, end: 0, slots: [], bytes: new Uint8Array(0) });
    stores[stores.length - 1]!.slots.push(...riders);
  }
  const data = cache.v.data;
  for (const st of stores) {
    st.bytes = new Uint8Array(st.end - st.offset);
    for (const slot of st.slots) {
      const [start, end] = rangeOf(slot);
      if (end <= start) continue;
      const from = slot * bs + (start % bs);
      st.bytes.set(data.subarray(from, from + (end - start)), start - st.offset);
    }
  }
  Atomics.store(I, v.i + VnodeI32.DirtyHead, -1);
  Atomics.store(I, v.i + VnodeI32.DirtyCount, 0);
  for (const slot of slots) {
    Atomics.store(H, slot * HEADER_I32 + HeaderI32.DirtyNext, -1);
    Atomics.store(H, slot * HEADER_I32 + HeaderI32.DirtyPrev, -1);
  }
  // The truncation travels with the batch; truncations made while it is in flight
  // collect in TruncPos again, for the next batch. Until the server has applied this
  // one, the zero point still honours it (InFlightTruncPos).
  const truncPos = F[v.f + VnodeF64.TruncPos]!;
  F[v.f + VnodeF64.InFlightTruncPos] = truncPos;
  F[v.f + VnodeF64.TruncPos] = Infinity;
  // The vnode's dirty hold passes to this batch; a write during the store takes a new one.
  // So does the knowledge that the file changed under these changes.
  const flags = Atomics.and(I, v.i + VnodeI32.Flags, ~(VNODE_DIRTY_HELD | VNODE_CHANGED_UNDER_DIRTY | VNODE_LENGTH_SET));
  const rpcs = Math.max(1, stores.length);
  Atomics.add(I, v.i + VnodeI32.StoresInFlight, rpcs);
  Atomics.store(I, v.i + VnodeI32.StoreOwner, threadToken);
  return {
    stores,
    truncPos,
    fileLength: length,
    baseVersion: F[v.f + VnodeF64.DataVersion]!,
    conflict: (flags & VNODE_CHANGED_UNDER_DIRTY) !== 0,
    lengthSet: (flags & VNODE_LENGTH_SET) !== 0,
  };
}

/**
 * Under the write lock, at the last reply of a batch: with nothing of ours unstored or in
 * flight, the file is what the server has (its length too: after a conflict, that is the
 * file as changed by someone else, with our bytes over it). A conflict this batch has
 * answered for is not another batch's to count.
 */
function endBatch(cache: CacheContext, v: Vnode, serverLength: number, conflict: boolean): void {
  const I = cache.v.vnodeI32;
  if (conflict) cache.v.count('storeConflicts');
  const idle = (Atomics.load(I, v.i + VnodeI32.Flags) & VNODE_DIRTY_HELD) === 0 && Atomics.load(I, v.i + VnodeI32.StoresInFlight) === 0;
  if (!idle) return;
  cache.v.vnodeF64[v.f + VnodeF64.Length] = serverLength;
  Atomics.and(I, v.i + VnodeI32.Flags, ~VNODE_CHANGED_UNDER_DIRTY);
}

/**
 * Sends a batch. The first call goes alone, carrying the truncation and the version the
 * bytes were written over (so the server can tell a conflict); the others then go
 * together, STORE_PARALLEL at a time, the last one carrying the file's length: their
 * byte ranges are disjoint and within that length, so the order the server applies them
 * in does not matter, and a store runs at the link's bandwidth, not one round trip per
 * chunk. Replies may come back in any order: each is applied under a lock holder of its
 * own, and a version lower than one already known changes nothing (version-range.ts).
 */
async function store(cache: CacheContext, v: Vnode, batch: StoreBatch, origin: Origin): Promise<void> {
  const I = cache.v.vnodeI32;
  const F = cache.v.vnodeF64;
  if (origin === 'store-behind') cache.v.count('storeBehindBatches');
  const calls: PendingStore[] = batch.stores.length > 0 ? batch.stores : [{ offset: 0, end: 0, bytes: new Uint8Array(0), slots: [] }];
  const stored = new Set<PendingStore>();
  let conflict = batch.conflict;
  let latest = { version: -Infinity, length: 0 };
  // A conflict (known before, or found by the first call) leaves the length to the file
  // as it is now, unless a truncation of ours set it: our length describes a file that
  // has changed under us.
  const lengthFor = (last: boolean): { fileLength?: number } =>
    last && (!conflict || batch.lengthSet) ? { fileLength: batch.fileLength } : {};
  const send = async (call: PendingStore, options: StoreOptions): Promise<void> => {
    cache.v.count('storeRpcs');
    cache.trace.store(v.fid, call.offset, call.bytes.length);
    const result = await rpc(cache, () => cache.server.storeData(v.fid, call.offset, call.bytes, options), origin);
    cache.v.count('storeBytes', call.bytes.length);
    if (result.conflict === true) conflict = true;
    const own = vnodeHandle(cache, v.fid, v.slot, v.gen);
    await own.lock.writeAsync();
    try {
      const before = F[v.f + VnodeF64.BufDataVersionLow]!;
      applyServerVersion(cache, own, result.dataVersion, result.length);
      Atomics.sub(I, v.i + VnodeI32.StoresInFlight, 1);
      if (F[v.f + VnodeF64.BufDataVersionLow] === before) cache.v.count('buffersKeptValid', Atomics.load(I, v.i + VnodeI32.Cached));
      else cache.v.count('buffersInvalidated');
      if (result.dataVersion > latest.version) {
        latest = { version: result.dataVersion, length: result.length };
        F[v.f + VnodeF64.ServerLength] = result.length;
      }
      if (call === calls[0]) F[v.f + VnodeF64.InFlightTruncPos] = Infinity; // it carried the truncation
      for (const slot of call.slots) Atomics.and(cache.v.headers, slot * HEADER_I32 + HeaderI32.State, ~BufferState.Storing);
      stored.add(call);
      // The batch's end is seen in the same critical section as its last reply: a later
      // batch may be taken, and even answered, as soon as this lock is released.
      if (stored.size === calls.length) endBatch(cache, own, latest.length, conflict);
    } finally {
      own.lock.release();
    }
    for (const slot of call.slots) cache.buffers.releaseDisowned(slot); // the dirty holds
  };
  try {
    await send(calls[0]!, {
      baseVersion: batch.baseVersion,
      fileLengthSet: batch.lengthSet,
      ...(batch.truncPos !== Infinity ? { truncPos: batch.truncPos } : {}),
      ...lengthFor(calls.length === 1),
    });
    const rest = calls.slice(1);
    let next = 0;
    let failure: { error: unknown } | undefined;
    const lane = async (): Promise<void> => {
      while (next < rest.length && failure === undefined) {
        const k = next++;
        await send(rest[k]!, { fileLengthSet: batch.lengthSet, ...lengthFor(k === rest.length - 1) }).catch((e: unknown) => {
          failure ??= { error: e };
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(STORE_PARALLEL, rest.length) }, lane));
    if (failure !== undefined) throw failure.error;
    cache.vnodes.releaseDisowned(v.slot); // the batch's dirty hold on the vnode
  } catch (e) {
    const left = calls.filter((c) => !stored.has(c));
    const permanent = storeFailure(e) === 'permanent';
    await v.lock.writeAsync();
    try {
      const slots = left.flatMap((c) => c.slots);
      if (permanent) dropRefused(cache, v, slots, left.length, errnoOf(e)!);
      else returnUnstored(cache, v, slots, left.length, conflict, batch.lengthSet);
    } finally {
      v.lock.release();
    }
    if (permanent) await salvage(cache, v.fid, left, errnoOf(e)!, (e as Error).message);
    throw e;
  } finally {
    Atomics.notify(I, v.i + VnodeI32.StoresInFlight);
  }
}
