/**
 * What every phase of the cache works with, built once per cache per thread (the shape of
 * netfs's netfs_io_request, split in two: the cache's context here, and the Vnode handle
 * of one operation). The phase modules export functions taking the context; none
 * imports the CacheManager facade, and each imports only modules before it in this
 * list: buffers, seal, vnode-status, fetch, store-error, salvage, reclaim, store, locked-pass,
 * access, prefetch, read, write, background (test/source-layout.test.ts checks there is
 * no cycle).
 *
 * Invariants:
 * - No lock is held across an await. A buffer being fetched is marked Busy in its header
 *   and others wait on that word; a store in flight is counted in storesInFlight.
 * - A Vnode handle holds a reference on its slot for as long as it is used, so the slot's
 *   generation (part of every buffer key) cannot change under it.
 * - A Vnode's `lock` is that operation's own holder of the vnode's RwLock: two
 *   operations running at once never share a holder.
 * - An operation's Origin alone decides whether a busy server is retried (only when a
 *   caller waits), how it is counted, and whether the buffers it fills are marked
 *   Prefetched.
 */

import type { Fid } from '../core/fid.js';
import type { RefTable } from '../core/ref-table.js';
import { RwLock } from '../core/rw-lock.js';
import type { FileServer } from '../server/file-server.js';
import type { Tracer } from '../trace/tracer.js';
import type { PagTable } from '../users/pag-table.js';
import type { AccessCache } from './access-cache.js';
import type { BackgroundJob, BackgroundRunner } from './background-job.js';
import { withBusyRetry, type BusyRetryPolicy } from './busy-retry.js';
import { VNODE_F64, VNODE_I32, VnodeI32, type CacheViews } from './layout.js';
import type { Readahead } from './readahead.js';

/** Why the cache is doing something: one per operation, as netfs's enum netfs_io_origin. */
export type Origin = 'read' | 'write' | 'truncate' | 'flush' | 'stat' | 'prefetch' | 'store-behind';

/** Whether a caller waits on work of this origin; only then is a busy server retried. */
export function callerWaits(origin: Origin): boolean {
  return origin !== 'prefetch' && origin !== 'store-behind';
}

/** Who an operation is for: a live PAG. Its token in the file's cell says which user. */
export interface Caller {
  readonly pag: number;
}

/** One operation's handle on a vnode record: the operation holds a reference on `slot`. */
export interface Vnode {
  readonly fid: Fid;
  readonly slot: number;
  readonly gen: number;
  /** Float64 and Int32 indexes of the record. */
  readonly f: number;
  readonly i: number;
  readonly lock: RwLock;
}

/** A background job and, when it runs on the thread that made it, the vnode it is for. */
export type LocalJobRunner = (v: Vnode, job: BackgroundJob) => Promise<void>;

export interface CacheContext {
  readonly server: FileServer;
  /** Vnode records by Fid; buffers by (vnode slot, generation, block). */
  readonly vnodes: RefTable;
  readonly buffers: RefTable;
  readonly v: CacheViews;
  readonly blockSize: number;
  /** Blocks per fetch or store RPC at most. */
  readonly chunkBlocks: number;
  readonly bufferCount: number;
  readonly prefetch: boolean;
  readonly maxReadahead: number;
  readonly storeBehind: boolean;
  readonly busyRetry: BusyRetryPolicy;
  readonly access: AccessCache;
  readonly pags: PagTable | undefined;
  readonly trace: Tracer;
  /** Where the bytes of stores refused for good go (salvage.ts). */
  readonly salvageDir: string;
  /** A block of zeros, not shared: see buffers.zero. */
  readonly zeros: Uint8Array;
  /** This thread's readahead streams, by vnode slot and generation. */
  readonly readahead: Map<string, Readahead>;
  /** Where this thread's last write of each vnode ended (slot.generation): write.ts. */
  readonly writeEnds: Map<string, number>;
  /** Lock holders for the read hit path, one per vnode slot, reused (it never awaits). */
  readonly syncLocks: Map<number, RwLock>;
  /** The background jobs this thread started and that have not settled. */
  readonly background: Set<Promise<void>>;
  /** Runs a job here, on the vnode the scheduling operation holds. */
  readonly runLocal: LocalJobRunner;
  /** Where jobs go instead, when a pool routes them (CacheManager.setBackgroundRunner). */
  runner: BackgroundRunner | undefined;
  closed: boolean;
}

/** A new holder of v's lock: for work that runs beside the operation that found v. */
export function vnodeLock(cache: CacheContext, slot: number): RwLock {
  const i = slot * VNODE_I32;
  return new RwLock(cache.v.vnodeI32, i + VnodeI32.Lock, i + VnodeI32.WriteSeq);
}

/** A handle on a slot the caller holds a reference on, with a lock holder of its own. */
export function vnodeHandle(cache: CacheContext, fid: Fid, slot: number, gen: number): Vnode {
  return { fid, slot, gen, f: slot * VNODE_F64, i: slot * VNODE_I32, lock: vnodeLock(cache, slot) };
}

/** An RPC, retried while the server is busy if a caller waits on it (within the deadline). */
export function rpc<T>(cache: CacheContext, call: () => Promise<T>, origin: Origin): Promise<T> {
  const policy = callerWaits(origin) && cache.busyRetry.deadlineMs > 0 ? cache.busyRetry : undefined;
  return withBusyRetry(call, policy, () => cache.v.count('busyRetries'));
}

/**
 * Starts a background job. On this thread (no runner set) it runs on the vnode the
 * scheduling operation holds, under a reference and a lock holder of its own, so it
 * never looks the file up again; a runner (a pool) gets the job as plain data.
 */
export function schedule(cache: CacheContext, v: Vnode, job: BackgroundJob): void {
  let run: Promise<void>;
  if (cache.runner !== undefined) {
    run = cache.runner(job);
  } else {
    cache.vnodes.hold(v.slot);
    const own = vnodeHandle(cache, v.fid, v.slot, v.gen);
    run = cache.runLocal(own, job).finally(() => cache.vnodes.release(v.slot));
  }
  const tracked = run
    .catch(() => cache.v.count('backgroundFailures'))
    .finally(() => cache.background.delete(tracked));
  cache.background.add(tracked);
}

/**
 * The debug lock checks: with CMKIT_DEBUG_LOCKS=1 (npm test sets it), a function
 * documented "under the write lock" or "under the vnode lock" throws when its caller's
 * holder does not have the lock in that mode. Off, they are no-op functions chosen once
 * here, which V8 inlines away.
 */
const CHECK_LOCKS = process.env['CMKIT_DEBUG_LOCKS'] === '1';
const unchecked = (_v: Vnode, _what: string): void => {};

export const assertWriteLocked: (v: Vnode, what: string) => void = CHECK_LOCKS
  ? (v, what) => {
      if (v.lock.mode !== 'write') throw lockAssertion(what, 'the write lock', v.lock.mode);
    }
  : unchecked;

export const assertLocked: (v: Vnode, what: string) => void = CHECK_LOCKS
  ? (v, what) => {
      if (v.lock.mode === 'none') throw lockAssertion(what, 'the vnode lock', 'none');
    }
  : unchecked;

function lockAssertion(what: string, wanted: string, held: string): Error {
  return Object.assign(new Error(`${what} runs under ${wanted}; this holder has ${held}`), { code: 'ERR_CMKIT_LOCK_ASSERTION' });
}
