/**
 * Writing and truncating: changes a caller makes to the cached file, kept dirty until a
 * store sends them (store.ts).
 *
 * Invariants:
 * - Under the write lock. A write makes the blocks it touches dirty and valid; the bytes
 *   of a partly written block that it leaves alone must be known first (fetched), unless
 *   they lie past the zero point and so are zeros by rule. Each dirty buffer says which of
 *   its bytes were written (dirtyLo, dirtyHi), so a store never sends clean bytes back.
 * - A buffer made dirty turns the lookup's reference into its dirty hold (disowned), and
 *   the vnode takes its own dirty hold, so neither is recycled or dropped by a thread's
 *   exit before the data is stored.
 * - A truncation drops the buffers wholly past the new length (dirty ones too), zeroes
 *   the tail of the block it cuts, and lowers truncPos: bytes past it are never fetched
 *   again, and the next store carries it.
 */

import { Rights } from '../server/file-server.js';
import { authorize } from './access.js';
import { countCached, forEachBufferOf, holdBuffer, isValid, linkDirty, unlinkDirty, zero } from './buffers.js';
import { assertWriteLocked, type CacheContext, type Caller, type Vnode } from './context.js';
import { claimRun } from './fetch.js';
import { BufferState, HEADER_I32, HeaderI32, VNODE_LENGTH_SET, VnodeF64, VnodeI32, blockOf } from './layout.js';
import { lockedPass, walkBlocks } from './locked-pass.js';
import type { Need } from './need.js';
import { queueStoreBehind } from './store.js';
import { ensureStatus, markVnodeDirty, zeroPoint } from './vnode-status.js';

/** Writes `data` at `offset` of v into the cache; a store sends it later. */
export async function write(cache: CacheContext, v: Vnode, offset: number, data: Uint8Array, caller: Caller | undefined): Promise<void> {
  await authorize(cache, v, caller, Rights.Write, 'write');
  await ensureStatus(cache, v, 'write');
  let pos = offset;
  const end = offset + data.length;
  const sequential = continuesWrites(cache, v, offset, end);
  await lockedPass(cache, v, 'write', 'write', () => {
    const r = walkBlocks(v, pos, end, (at) => writeBlock(cache, v, at, end, data, offset, sequential));
    pos = r.pos;
    return r.need;
  });
  if (cache.storeBehind) queueStoreBehind(cache, v);
}

/** Vnodes whose last write end this thread remembers; the oldest is forgotten first. */
const WRITE_STREAMS = 1024;

/**
 * Whether a write of [offset, end) continues where this thread's last write of v ended
 * (or starts at 0), as a copy does; records its end. Such a writer's misses (blocks it
 * leaves partly unknown) fetch to the chunk's end, as a sequential reader's do.
 */
function continuesWrites(cache: CacheContext, v: Vnode, offset: number, end: number): boolean {
  const key = `${v.slot}.${v.gen}`;
  const last = cache.writeEnds.get(key);
  if (last === undefined && cache.writeEnds.size >= WRITE_STREAMS) cache.writeEnds.delete(cache.writeEnds.keys().next().value!);
  cache.writeEnds.delete(key); // re-inserted last: the map's order is the age of each stream
  cache.writeEnds.set(key, end);
  return last !== undefined ? offset === last : offset === 0;
}

/** Sets v's length. */
export async function truncate(cache: CacheContext, v: Vnode, length: number, caller: Caller | undefined): Promise<void> {
  await authorize(cache, v, caller, Rights.Write, 'truncate');
  await ensureStatus(cache, v, 'truncate');
  await v.lock.writeAsync();
  try {
    truncateLocked(cache, v, length);
  } finally {
    v.lock.release();
  }
}

/**
 * Under the write lock: copies into one block, or says what is needed first (of a
 * `sequential` writer, to its chunk's end; of any other, only the blocks it touches).
 */
function writeBlock(cache: CacheContext, v: Vnode, pos: number, end: number, data: Uint8Array, dataBase: number, sequential: boolean): number | Need {
  assertWriteLocked(v, 'writeBlock');
  const bs = cache.blockSize;
  const block = Math.floor(pos / bs);
  const blockStart = block * bs;
  const within = pos - blockStart;
  const n = Math.min(bs - within, end - pos);
  const slot = holdBuffer(cache, v, block);
  if (typeof slot !== 'number') return slot;
  const H = cache.v.headers;
  const h = slot * HEADER_I32;
  let state = Atomics.load(H, h + HeaderI32.State);
  if ((state & BufferState.Busy) !== 0) {
    cache.buffers.release(slot);
    return { kind: 'busy', slot, state };
  }
  const F = cache.v.vnodeF64;
  if (!isValid(cache, v, slot, state)) {
    const zeroAt = zeroPoint(cache, v);
    const headUnknown = within > 0 && blockStart < zeroAt;
    const tailUnknown = pos + n < blockStart + bs && pos + n < zeroAt;
    if (headUnknown || tailUnknown) {
      cache.v.count('misses');
      return claimRun(cache, v, block, slot, state, pos + n, sequential);
    }
    if (n < bs && blockStart < F[v.f + VnodeF64.ServerLength]!) cache.v.count('fetchesAvoidedByTruncation');
    // Only what this write leaves alone needs zeros; the rest it overwrites.
    zero(cache, slot * bs, slot * bs + within);
    zero(cache, slot * bs + within + n, slot * bs + bs);
    state = BufferState.Valid;
    countCached(cache, v, 1);
  }
  cache.v.data.set(data.subarray(pos - dataBase, pos - dataBase + n), slot * bs + within);
  cache.v.versions[slot] = F[v.f + VnodeF64.DataVersion]!;
  // The bytes a store will send: only what was written. While an older batch with this
  // block is in flight the range grows from its range, which comes back if that store fails.
  if ((state & (BufferState.Dirty | BufferState.Storing)) !== 0) {
    Atomics.store(H, h + HeaderI32.DirtyLo, Math.min(Atomics.load(H, h + HeaderI32.DirtyLo), within));
    Atomics.store(H, h + HeaderI32.DirtyHi, Math.max(Atomics.load(H, h + HeaderI32.DirtyHi), within + n));
  } else {
    Atomics.store(H, h + HeaderI32.DirtyLo, within);
    Atomics.store(H, h + HeaderI32.DirtyHi, within + n);
  }
  if ((state & BufferState.Dirty) === 0) {
    linkDirty(cache, v, slot);
    markVnodeDirty(cache, v);
    Atomics.store(H, h + HeaderI32.State, (state & ~BufferState.Prefetched) | BufferState.Valid | BufferState.Dirty);
    cache.buffers.disown(slot); // the lookup's reference becomes the dirty hold
  } else {
    cache.buffers.release(slot);
  }
  if (pos + n > F[v.f + VnodeF64.Length]!) F[v.f + VnodeF64.Length] = pos + n;
  return n;
}

/** Under the write lock: v's length becomes `length`. */
function truncateLocked(cache: CacheContext, v: Vnode, length: number): void {
  assertWriteLocked(v, 'truncateLocked');
  const F = cache.v.vnodeF64;
  const H = cache.v.headers;
  const bs = cache.blockSize;
  const oldLength = F[v.f + VnodeF64.Length]!;
  if (length < oldLength) {
    forEachBufferOf(cache, v, Math.floor(length / bs), Math.ceil(oldLength / bs), (slot, state) => {
      // A buffer being fetched is zeroed past the zero point when it is filled.
      if ((state & BufferState.Busy) !== 0) return;
      const blockStart = blockOf(H, slot * HEADER_I32) * bs;
      if (blockStart >= length) {
        if (isValid(cache, v, slot, state)) countCached(cache, v, -1);
        if ((state & BufferState.Dirty) !== 0) {
          unlinkDirty(cache, v, slot);
          cache.buffers.releaseDisowned(slot); // the dirty hold
        }
        Atomics.store(H, slot * HEADER_I32 + HeaderI32.State, 0);
      } else if ((state & BufferState.Valid) !== 0) {
        zero(cache, slot * bs + (length - blockStart), slot * bs + bs);
      }
    });
    F[v.f + VnodeF64.TruncPos] = Math.min(F[v.f + VnodeF64.TruncPos]!, length);
  }
  F[v.f + VnodeF64.Length] = length;
  // A length the user set holds even if the file changes under it (a conflict).
  Atomics.or(cache.v.vnodeI32, v.i + VnodeI32.Flags, VNODE_LENGTH_SET);
  markVnodeDirty(cache, v);
}
