/**
 * Reading (netfs's buffered_read): the hit path, which serves a read from valid buffers
 * without an await or a shared write, and the slow path, a locked pass that fetches
 * what is missing.
 *
 * Invariants:
 * - The hit path changes nothing shared (but a buffer's Prefetched mark, by CAS) and is
 *   checked by the vnode lock's write sequence afterwards: a writer that came in
 *   meanwhile (a fill, a write, a truncate) sends the read to the slow path, which reads
 *   again under the lock. (On such a miss `into` may hold bytes the slow path then
 *   overwrites.)
 * - Bytes past the zero point (a pending truncation, the server's length) are zeros made
 *   here, never fetched.
 * - A read returns at most the file's length as this client sees it, unstored writes
 *   included; the first pass sizes the result.
 */

import type { Fid } from '../core/fid.js';
import { RwLock } from '../core/rw-lock.js';
import { Rights } from '../server/file-server.js';
import { authorize, cachedRightsAllow } from './access.js';
import { countCached, holdBuffer, isValid, notePrefetchUse, zero } from './buffers.js';
import { assertLocked, type CacheContext, type Caller, type Vnode } from './context.js';
import { CLAIMED, claimRun } from './fetch.js';
import { BufferState, HEADER_I32, HeaderI32, VNODE_F64, VNODE_I32, VnodeF64, VnodeI32, identityIs } from './layout.js';
import { lockedPass, walkBlocks } from './locked-pass.js';
import { RETRY, type Need } from './need.js';
import { continuesStream, startReadahead } from './prefetch.js';
import { ensureStatus, holdIfCurrent, withVnode, zeroPoint } from './vnode-status.js';

/** Reads up to `length` bytes at `offset` (into `into` if given); shorter at end of file. */
export function read(cache: CacheContext, fid: Fid, offset: number, length: number, into: Uint8Array | undefined, caller: Caller | undefined): Promise<Uint8Array> {
  cache.trace.read(fid, offset, length);
  const hit = readCached(cache, fid, offset, length, into, caller);
  return hit !== undefined ? Promise.resolve(hit) : readSlow(cache, fid, offset, length, into, caller);
}

/**
 * The hit path: the file's status is current, no writer holds or took its lock meanwhile,
 * and every block asked for is valid. Anything else returns undefined, having changed
 * nothing, and the caller takes the slow path.
 */
function readCached(cache: CacheContext, fid: Fid, offset: number, length: number, into: Uint8Array | undefined, caller: Caller | undefined): Uint8Array | undefined {
  const slot = holdIfCurrent(cache, fid);
  if (slot < 0) return undefined;
  try {
    const I = cache.v.vnodeI32;
    const i = slot * VNODE_I32;
    const f = slot * VNODE_F64;
    let lock = cache.syncLocks.get(slot);
    if (lock === undefined) {
      lock = new RwLock(I, i + VnodeI32.Lock, i + VnodeI32.WriteSeq);
      cache.syncLocks.set(slot, lock);
    }
    // An optimistic read: no shared write, so readers on every thread run in parallel.
    const stamp = lock.optimisticRead();
    if (stamp < 0) return undefined;
    const v: Vnode = { fid, slot, gen: Atomics.load(I, i + VnodeI32.Generation), f, i, lock };
    if (caller !== undefined && !cachedRightsAllow(cache, v, caller, Rights.Read)) return undefined;
    const end = Math.max(offset, Math.min(offset + length, cache.v.vnodeF64[f + VnodeF64.Length]!));
    const out = into ?? new Uint8Array(end - offset);
    let blocks = 0;
    for (let pos = offset; pos < end; blocks++) {
      const n = copyIfValid(cache, v, pos, end, out, offset);
      if (n === 0) return undefined;
      pos += n;
    }
    if (!lock.validate(stamp)) return undefined;
    cache.v.count('hits', blocks);
    if (cache.prefetch) startReadahead(cache, v, offset, end - offset);
    return out.subarray(0, end - offset);
  } finally {
    cache.vnodes.release(slot);
  }
}

/** Under the read lock or an optimistic read: copies from one block if it is cached and valid; 0 if not. */
function copyIfValid(cache: CacheContext, v: Vnode, pos: number, end: number, out: Uint8Array, outBase: number): number {
  const bs = cache.blockSize;
  const block = Math.floor(pos / bs);
  const slot = cache.buffers.findHoldKey(v.slot, v.gen, block >>> 0, Math.floor(block / 2 ** 32));
  if (slot < 0) return 0;
  try {
    const H = cache.v.headers;
    const hs = slot * HEADER_I32 + HeaderI32.State;
    const state = Atomics.load(H, hs);
    if (!identityIs(H, slot * HEADER_I32 + HeaderI32.Identity, v.slot, v.gen, block >>> 0, Math.floor(block / 2 ** 32)) ||
        (state & BufferState.Busy) !== 0 || !isValid(cache, v, slot, state)) {
      return 0;
    }
    notePrefetchUse(cache, hs, state);
    const within = pos - block * bs;
    const n = Math.min(bs - within, end - pos);
    const src = slot * bs + within;
    out.set(cache.v.data.subarray(src, src + n), pos - outBase);
    return n;
  } finally {
    cache.buffers.release(slot);
  }
}

/** The slow path: a locked pass under the read lock, fetching what is not cached. */
function readSlow(cache: CacheContext, fid: Fid, offset: number, length: number, into: Uint8Array | undefined, caller: Caller | undefined): Promise<Uint8Array> {
  return withVnode(cache, fid, async (v) => {
    await authorize(cache, v, caller, Rights.Read, 'read');
    await ensureStatus(cache, v, 'read');
    let out = into;
    let pos = offset;
    let end = offset;
    const sequential = cache.prefetch && continuesStream(cache, v, offset);
    await lockedPass(cache, v, 'read', 'read', () => {
      end = Math.max(offset, Math.min(offset + length, cache.v.vnodeF64[v.f + VnodeF64.Length]!));
      // The length may change between passes; the first pass sizes the result.
      out ??= new Uint8Array(end - offset);
      end = Math.min(end, offset + out.length);
      const o = out;
      const r = walkBlocks(v, pos, end, (at) => readBlock(cache, v, at, end, o, offset, sequential));
      pos = r.pos;
      return r.need;
    });
    if (cache.prefetch) startReadahead(cache, v, offset, end - offset);
    return out!.subarray(0, end - offset);
  });
}

/**
 * Under the read lock: copies from one block, or says what is needed first. A miss of a
 * `sequential` read is fetched to its chunk's end, of any other only up to `end`.
 */
function readBlock(cache: CacheContext, v: Vnode, pos: number, end: number, out: Uint8Array, outBase: number, sequential: boolean): number | Need {
  assertLocked(v, 'readBlock');
  const bs = cache.blockSize;
  const block = Math.floor(pos / bs);
  const within = pos - block * bs;
  const n = Math.min(bs - within, end - pos);
  const slot = holdBuffer(cache, v, block);
  if (typeof slot !== 'number') return slot;
  const H = cache.v.headers;
  const hs = slot * HEADER_I32 + HeaderI32.State;
  const state = Atomics.load(H, hs);
  if ((state & BufferState.Busy) !== 0) {
    cache.buffers.release(slot);
    return { kind: 'busy', slot, state };
  }
  if (!isValid(cache, v, slot, state)) {
    if (block * bs < zeroPoint(cache, v)) {
      cache.v.count('misses');
      return claimRun(cache, v, block, slot, state, end, sequential); // keeps the hold
    }
    // Past a pending truncation or the server's length: zeros, made here.
    if (Atomics.compareExchange(H, hs, state, CLAIMED) !== state) {
      cache.buffers.release(slot);
      return RETRY;
    }
    zero(cache, slot * bs, slot * bs + bs);
    cache.v.versions[slot] = cache.v.vnodeF64[v.f + VnodeF64.DataVersion]!;
    Atomics.store(H, hs, BufferState.Valid);
    Atomics.notify(H, hs);
    countCached(cache, v, 1);
    cache.v.count('fetchesAvoidedByTruncation');
  } else {
    cache.v.count('hits');
    notePrefetchUse(cache, hs, state);
  }
  const src = slot * bs + within;
  out.set(cache.v.data.subarray(src, src + n), pos - outBase);
  cache.buffers.release(slot);
  return n;
}
