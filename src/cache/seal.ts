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
 */

import { addon } from '../core/native.js';
import { fidHash, type Fid } from '../core/fid.js';
import { forEachBufferOf, countCached } from './buffers.js';
import { assertWriteLocked, type CacheContext, type Vnode } from './context.js';
import { BufferState, HEADER_I32, HeaderI32, VNODE_CHANGED_UNDER_DIRTY, VNODE_DIRTY_HELD, VNODE_RESTORED, VnodeF64, VnodeI32, blockOf } from './layout.js';

const { checksum, checksums } = addon.cacheFile;
const TWO32 = 2 ** 32;

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
    if (state !== BufferState.Restored) return;
    if (cache.v.versions[slot] !== version) {
      Atomics.store(H, slot * HEADER_I32 + HeaderI32.State, 0);
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
