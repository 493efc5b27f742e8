/**
 * Block seals (a cache file only): what lets a cache that starts on a file another
 * process left behind serve a block without fetching it, and never serve a block that a
 * crash tore, a bad disk flipped or another file's record now claims.
 *
 * Owns: the seals array, and the RESTORED marks of vnode records and buffers.
 *
 * Invariants:
 * - A seal is written when a fetch fills a block, from the bytes it filled, and names
 *   the block's Fid, block number and version. Nothing else writes one, so any later
 *   change to the block (a write, a truncation, a torn page) leaves the seal behind it.
 * - A buffer found clean in a cache file is RESTORED: neither Valid nor Dirty, so no path
 *   serves it. At its file's first status (the vnode is RESTORED, under the write lock)
 *   it becomes Valid if its version is the one the server now reports and its seal is
 *   right for the Fid asking; otherwise it is emptied.
 * - The range a restored vnode starts with is that version alone: the records' own
 *   versions are never trusted for clean data, so a torn record cannot widen it.
 * - Whether a restored block's bytes match its seal needs no server: checkRestoredSeals
 *   works through them in the background from the start, marking each SEAL_CHECKED or
 *   emptying it, each by one CAS from RESTORED (which no other state returns to, so a
 *   buffer recycled meanwhile is left alone); the first status then only compares
 *   versions for the blocks it has reached.
 */

import { setImmediate as nextTurn } from 'node:timers/promises';

import { addon } from '../core/native.js';
import { Fid, fidHash } from '../core/fid.js';
import { forEachBufferOf, countCached } from './buffers.js';
import { assertWriteLocked, type CacheContext, type Vnode } from './context.js';
import { BufferState, HEADER_I32, HeaderI32, VNODE_CHANGED_UNDER_DIRTY, VNODE_DIRTY_HELD, VNODE_I32, VNODE_RESTORED, VnodeF64, VnodeI32, blockOf } from './layout.js';

const { checksum, checksums } = addon.cacheFile;
const TWO32 = 2 ** 32;

/** Restored bytes checkRestoredSeals checks per turn of the event loop (about 1 ms). */
const CHECK_BATCH_BYTES = 4 << 20;

/**
 * Starts, in the background on the thread that opened the cache file, the check of
 * every restored block's bytes against its seal, for the Fid its record names and the
 * version it was filled at (see the invariants): a batch per turn, until done or the
 * cache closes. close() waits for it (it is one of the thread's background jobs).
 */
export function startSealCheck(cache: CacheContext, willNeed: (slot: number, count: number) => void): void {
  const run: Promise<void> = checkRestoredSeals(cache, willNeed)
    .catch(() => cache.v.count('backgroundFailures'))
    .finally(() => cache.background.delete(run));
  cache.background.add(run);
}

interface SealBatch {
  readonly slots: number[];
  readonly seeds: number[];
}

async function checkRestoredSeals(cache: CacheContext, willNeed: (slot: number, count: number) => void): Promise<void> {
  const H = cache.v.headers;
  const I = cache.v.vnodeI32;
  const seals = cache.v.seals!;
  const perBatch = Math.max(1, Math.floor(CHECK_BATCH_BYTES / cache.blockSize));
  let cursor = 0;
  // The next batch of restored blocks from the cursor on, and the kernel told to read
  // them in: while one batch is checked the next is on its way from the disk, so a
  // turn of this thread's event loop never waits for it.
  const collect = (): SealBatch => {
    const batch: SealBatch = { slots: [], seeds: [] };
    for (; cursor < cache.bufferCount && batch.slots.length < perBatch; cursor++) {
      const h = cursor * HEADER_I32;
      if (Atomics.load(H, h + HeaderI32.State) !== BufferState.Restored) continue;
      const owner = Atomics.load(H, h + HeaderI32.Identity);
      const i = owner * VNODE_I32;
      if (owner < 0 || i >= I.length || Atomics.load(I, i + VnodeI32.Generation) !== Atomics.load(H, h + HeaderI32.Identity + 1)) continue;
      const id = i + VnodeI32.Identity;
      const fid = new Fid(I[id]! >>> 0, I[id + 1]! >>> 0, I[id + 2]! >>> 0, I[id + 3]! >>> 0);
      batch.slots.push(cursor);
      batch.seeds.push(sealSeed(fid, blockOf(H, h), cache.v.versions[cursor]!));
    }
    for (let k = 0; k < batch.slots.length; ) {
      let n = 1;
      while (k + n < batch.slots.length && batch.slots[k + n] === batch.slots[k]! + n) n++;
      willNeed(batch.slots[k]!, n);
      k += n;
    }
    return batch;
  };
  let batch = collect();
  while (batch.slots.length > 0 && !cache.closed) {
    await nextTurn();
    const next = collect();
    const sums = new Uint32Array(batch.slots.length);
    checksums(cache.v.data, cache.blockSize, Int32Array.from(batch.slots), Uint32Array.from(batch.seeds), sums);
    batch.slots.forEach((s, k) => {
      const state = seals[s] === sums[k] ? BufferState.Restored | BufferState.SealChecked : 0;
      Atomics.compareExchange(H, s * HEADER_I32 + HeaderI32.State, BufferState.Restored, state);
    });
    batch = next;
  }
}

/** What a seal names besides the bytes: the Fid, the block number and the version. */
function sealSeed(fid: Fid, block: number, version: number): number {
  return fidHash(fid.hash, block >>> 0, Math.floor(block / TWO32), fidHash(version >>> 0, Math.floor(version / TWO32) >>> 0, 0, 0)) >>> 0;
}

/** The seal of the block in buffer `slot`, as block `block` of `fid` at `version`. */
function sealOf(cache: CacheContext, fid: Fid, block: number, version: number, slot: number): number {
  return checksum(cache.v.data, slot * cache.blockSize, cache.blockSize, sealSeed(fid, block, version));
}

/** Under the write lock, as a fetch fills buffer `slot` with block `block` at `version`. */
export function sealFilled(cache: CacheContext, v: Vnode, block: number, version: number, slot: number): void {
  const seals = cache.v.seals;
  if (seals !== undefined) seals[slot] = sealOf(cache, v.fid, block, version, slot);
}

/**
 * Under the write lock, at the first server version a restored vnode hears of: its
 * range becomes that version alone, and each of its restored buffers becomes Valid or
 * empty (see the invariants). Returns false if v is not restored.
 */
export function settleRestored(cache: CacheContext, v: Vnode, version: number, length: number): boolean {
  const I = cache.v.vnodeI32;
  const flags = Atomics.load(I, v.i + VnodeI32.Flags);
  if ((flags & VNODE_RESTORED) === 0) return false;
  assertWriteLocked(v, 'settleRestored');
  const F = cache.v.vnodeF64;
  const H = cache.v.headers;
  const seals = cache.v.seals!;
  const unstored = (flags & VNODE_DIRTY_HELD) !== 0 || Atomics.load(I, v.i + VnodeI32.StoresInFlight) > 0;
  // Our unstored changes were made over the version the record last knew: if the server
  // has another now, storing them is a conflict (store.ts), as for a live cache.
  if (unstored && F[v.f + VnodeF64.DataVersion] !== version) Atomics.or(I, v.i + VnodeI32.Flags, VNODE_CHANGED_UNDER_DIRTY);
  const bs = cache.blockSize;
  const end = Math.ceil(Math.max(F[v.f + VnodeF64.Length]!, F[v.f + VnodeF64.ServerLength]!, length) / bs);
  // Gathered first and checked in one native call over several cores: a restarted
  // cache meets a whole file's blocks at once, at its first read.
  const slots: number[] = [];
  const seeds: number[] = [];
  forEachBufferOf(cache, v, 0, end, (slot, state) => {
    if ((state & ~BufferState.SealChecked) !== BufferState.Restored) return;
    const hs = slot * HEADER_I32 + HeaderI32.State;
    if (cache.v.versions[slot] !== version) {
      Atomics.store(H, hs, 0);
      return;
    }
    if (state === (BufferState.Restored | BufferState.SealChecked)) {
      Atomics.store(H, hs, BufferState.Valid);
      countCached(cache, v, 1);
      return;
    }
    slots.push(slot);
    seeds.push(sealSeed(v.fid, blockOf(H, slot * HEADER_I32), version));
  });
  const sums = new Uint32Array(slots.length);
  checksums(cache.v.data, bs, Int32Array.from(slots), Uint32Array.from(seeds), sums);
  slots.forEach((slot, k) => {
    const right = seals[slot] === sums[k];
    Atomics.store(H, slot * HEADER_I32 + HeaderI32.State, right ? BufferState.Valid : 0);
    if (right) countCached(cache, v, 1);
  });
  F[v.f + VnodeF64.DataVersion] = version;
  F[v.f + VnodeF64.BufDataVersionLow] = version;
  F[v.f + VnodeF64.ServerLength] = length;
  if (!unstored) F[v.f + VnodeF64.Length] = length;
  Atomics.and(I, v.i + VnodeI32.Flags, ~VNODE_RESTORED);
  return true;
}
