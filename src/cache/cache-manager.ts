import { setImmediate as nextTurn } from 'node:timers/promises';

import { invalidArgType, outOfRange, typeError } from '../core/errors.js';
import { Fid } from '../core/fid.js';
import { RefTable, type RefTableDescriptor } from '../core/ref-table.js';
import { RwLock } from '../core/rw-lock.js';
import { threadAlive, threadToken } from '../core/threads.js';
import { checkInteger, checkObject, checkUint32 } from '../core/validate.js';
import { Rights, type FetchResult, type FileServer, type FileStatus, type StoreOptions } from '../server/file-server.js';
import { PagTable, type PagTableDescriptor } from '../users/pag-table.js';
import { ANONYMOUS, AccessCache } from './access-cache.js';
import { RemoteFileServer, ServerChannel } from '../server/server-channel.js';
import {
  BufferState,
  CacheViews,
  busyState,
  claimerOf,
  HEADER_I32,
  HeaderI32,
  VNODE_DIRTY_HELD,
  VNODE_STORE_QUEUED,
  VNODE_F64,
  VNODE_I32,
  VnodeF64,
  VnodeI32,
  allocateCacheMemory,
  type CacheStats,
  type SharedCacheMemory,
} from './layout.js';
import { Tracer } from '../trace/tracer.js';
import { checkBackgroundJob, type BackgroundJob, type BackgroundRunner } from './background-job.js';
import { withBusyRetry, type BusyRetryPolicy } from './busy-retry.js';
import { Readahead } from './readahead.js';
import { isBufferValid, nextRange } from './version-range.js';

/** The smallest page size of the hosts we run on: prefault() touches one byte per page. */
const PAGE_SIZE = 4096;

export const DEFAULT_CACHE_SIZE = 64 * 1024 * 1024;
export const DEFAULT_BLOCK_SIZE = 4096;
export const DEFAULT_CHUNK_SIZE = 256 * 1024;
export const DEFAULT_MAX_VNODES = 4096;
export const DEFAULT_MAX_READAHEAD = 4 * 1024 * 1024;
export const DEFAULT_BUSY_DEADLINE_MS = 10_000;
export const DEFAULT_BUSY_DELAY_MS = 1;
export const DEFAULT_BUSY_MAX_DELAY_MS = 100;

export interface CacheManagerOptions {
  /** Bytes of file data the cache holds; rounded down to whole blocks. @default 67108864 (64 MiB) */
  readonly cacheSize?: number;
  /** Bytes per buffer: a power of two from 512 to 1 MiB. @default 4096 */
  readonly blockSize?: number;
  /** The largest fetch or store, in bytes: a multiple of blockSize. @default 262144 (256 KiB) */
  readonly chunkSize?: number;
  /** Files whose status the cache holds at once. @default 4096 */
  readonly maxVnodes?: number;
  /** Read ahead in the background when a file is read sequentially. @default true */
  readonly prefetch?: boolean;
  /** The largest readahead window, in bytes. @default 4194304 (4 MiB) */
  readonly maxReadahead?: number;
  /**
   * Store-behind: once a file has a chunk or more of dirty data, store it in the
   * background while writes go on; flush() waits for those stores and stores the rest.
   * false: nothing is stored before flush(). @default true
   */
  readonly storeBehind?: boolean;
  /**
   * How long a foreground operation (read, write, truncate, flush, stat) keeps retrying
   * a server that answers busy, in ms; 0 fails at once. Background work (prefetch) never
   * retries. @default 10000
   */
  readonly busyDeadlineMs?: number;
  /**
   * The PAGs callers act as. With it, read, write and truncate take a `caller` whose
   * rights the cache checks (and remembers per file) before serving it.
   */
  readonly pags?: PagTable;
  /** The first wait before retrying a busy server, in ms; it doubles each time. @default 1 */
  readonly busyDelayMs?: number;
  /** The longest wait between retries, in ms. @default 100 */
  readonly busyMaxDelayMs?: number;
}

/** Structured-clonable: post it to a worker and call CacheManager.attach there. */
export interface CacheDescriptor {
  readonly kind: 'cmkit.CacheManager';
  readonly vnodeTable: RefTableDescriptor;
  readonly bufferTable: RefTableDescriptor;
  readonly memory: SharedCacheMemory;
  readonly blockSize: number;
  readonly chunkSize: number;
  readonly prefetch: boolean;
  readonly maxReadahead: number;
  readonly storeBehind: boolean;
  readonly busyRetry: BusyRetryPolicy;
  /** The BroadcastChannel on which the creating thread serves FileServer RPCs. */
  readonly serverChannel: string;
  readonly access: SharedArrayBuffer;
  readonly pags: PagTableDescriptor | undefined;
}

/** Who an operation is for: a live PAG. Its token in the file's cell says which user. */
export interface Caller {
  readonly pag: number;
}

/** One operation's handle on a vnode record: the caller holds a reference on `slot`. */
interface Vnode {
  readonly fid: Fid;
  readonly slot: number;
  readonly gen: number;
  /** Float64 and Int32 indexes of the record. */
  readonly f: number;
  readonly i: number;
  readonly lock: RwLock;
}

/** A run of consecutive blocks claimed (state Busy, buffer held) for one fetch. */
interface Run {
  readonly firstBlock: number;
  readonly slots: number[];
}

/** Why a locked pass over a file stopped before it was done, and what to do unlocked. */
type Need =
  | { readonly kind: 'fetch'; readonly run: Run }
  | { readonly kind: 'busy'; readonly slot: number; readonly state: number }
  | { readonly kind: 'retry' }
  | { readonly kind: 'full' };

const RETRY: Need = { kind: 'retry' };
/** How this thread marks the buffers it claims. */
const CLAIMED = busyState(threadToken);
/** How long a thread waits on a Busy buffer before checking that its claimer lives. */
const BUSY_WAIT_SLICE_MS = 50;
const FULL: Need = { kind: 'full' };
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const READAHEAD_STREAMS = 1024;

let nextCacheId = 0;

/**
 * A file-system client cache shared by every thread of the process: vnode status and
 * data buffers live in shared memory, found through two RefTables (vnodes by Fid,
 * buffers by vnode and block number) and guarded by one RwLock per vnode.
 *
 * Create it on one thread with a FileServer; other threads attach with `descriptor` and
 * reach the server through that thread. No lock is held across an await: a buffer being
 * fetched is marked Busy in its header and others wait on that word.
 */
export class CacheManager {
  readonly #server: FileServer;
  readonly #vnodes: RefTable;
  readonly #buffers: RefTable;
  readonly #memory: SharedCacheMemory;
  readonly #v: CacheViews;
  readonly #blockSize: number;
  readonly #chunkBlocks: number;
  readonly #bufferCount: number;
  readonly #prefetch: boolean;
  readonly #maxReadahead: number;
  readonly #storeBehind: boolean;
  readonly #serverChannel: string;
  readonly #busyRetry: BusyRetryPolicy;
  readonly #owned: { channel: ServerChannel } | { remote: RemoteFileServer };
  readonly #access: AccessCache;
  readonly #accessMemory: SharedArrayBuffer;
  readonly #pags: PagTable | undefined;
  readonly #pagsAttached: boolean;
  readonly #readahead = new Map<string, Readahead>();
  readonly #background = new Set<Promise<void>>();
  #runBackgroundJob: BackgroundRunner = (job) => this.runBackground(job);
  readonly #trace = new Tracer();
  /** Lock holders for the synchronous fast path, one per vnode slot, reused. */
  readonly #syncLocks = new Map<number, RwLock>();
  /** A block of zeros, not shared: see #zero. */
  readonly #zeros: Uint8Array;
  #closed = false;

  private constructor(
    server: FileServer,
    vnodes: RefTable,
    buffers: RefTable,
    config: Omit<CacheDescriptor, 'kind' | 'vnodeTable' | 'bufferTable' | 'pags'>,
    owned: { channel: ServerChannel } | { remote: RemoteFileServer },
    pags: { table: PagTable; attached: boolean } | undefined,
  ) {
    this.#accessMemory = config.access;
    this.#access = new AccessCache(config.access);
    this.#pags = pags?.table;
    this.#pagsAttached = pags?.attached ?? false;
    this.#server = server;
    this.#vnodes = vnodes;
    this.#buffers = buffers;
    this.#memory = config.memory;
    this.#v = new CacheViews(config.memory);
    this.#blockSize = config.blockSize;
    this.#chunkBlocks = config.chunkSize / config.blockSize;
    this.#bufferCount = this.#v.versions.length;
    this.#prefetch = config.prefetch;
    this.#maxReadahead = config.maxReadahead;
    this.#storeBehind = config.storeBehind;
    this.#serverChannel = config.serverChannel;
    this.#busyRetry = config.busyRetry;
    this.#owned = owned;
    this.#zeros = new Uint8Array(config.blockSize);
  }

  /** A new cache in front of `server`, on this thread. */
  static create(server: FileServer, options: CacheManagerOptions = {}): CacheManager {
    checkObject(server, 'server');
    checkObject(options, 'options');
    const blockSize = checkInteger(options.blockSize ?? DEFAULT_BLOCK_SIZE, 'options.blockSize', 512, 1 << 20);
    if ((blockSize & (blockSize - 1)) !== 0) throw outOfRange('options.blockSize', 'a power of two', blockSize);
    const chunkSize = checkInteger(options.chunkSize ?? DEFAULT_CHUNK_SIZE, 'options.chunkSize', blockSize, 64 << 20);
    if (chunkSize % blockSize !== 0) throw outOfRange('options.chunkSize', `a multiple of blockSize (${blockSize})`, chunkSize);
    const cacheSize = checkInteger(options.cacheSize ?? DEFAULT_CACHE_SIZE, 'options.cacheSize', 4 * chunkSize, 2 ** 40);
    const maxVnodes = checkInteger(options.maxVnodes ?? DEFAULT_MAX_VNODES, 'options.maxVnodes', 1, 1 << 20);
    const maxReadahead = checkInteger(options.maxReadahead ?? DEFAULT_MAX_READAHEAD, 'options.maxReadahead', blockSize, 1 << 30);
    const prefetch = options.prefetch ?? true;
    if (typeof prefetch !== 'boolean') throw invalidArgType('options.prefetch', 'of type boolean', prefetch);
    const storeBehind = options.storeBehind ?? true;
    if (typeof storeBehind !== 'boolean') throw invalidArgType('options.storeBehind', 'of type boolean', storeBehind);
    const busyRetry: BusyRetryPolicy = {
      deadlineMs: checkInteger(options.busyDeadlineMs ?? DEFAULT_BUSY_DEADLINE_MS, 'options.busyDeadlineMs', 0, 2 ** 31),
      initialDelayMs: checkInteger(options.busyDelayMs ?? DEFAULT_BUSY_DELAY_MS, 'options.busyDelayMs', 1, 2 ** 31),
      maxDelayMs: checkInteger(options.busyMaxDelayMs ?? DEFAULT_BUSY_MAX_DELAY_MS, 'options.busyMaxDelayMs', 1, 2 ** 31),
    };
    const pags = options.pags;
    if (pags !== undefined && !(pags instanceof PagTable)) throw invalidArgType('options.pags', 'an instance of PagTable', pags);
    const buffers = Math.floor(cacheSize / blockSize);
    if (buffers > RefTable.maxCapacity) throw outOfRange('options.cacheSize', `at most ${RefTable.maxCapacity} blocks`, cacheSize);

    const memory = allocateCacheMemory(maxVnodes, buffers, blockSize);
    const serverChannel = `cmkit.cache.${process.pid}.${nextCacheId++}.${Math.random().toString(36).slice(2)}`;
    const channel = new ServerChannel(serverChannel, server);
    const cm = new CacheManager(
      server,
      new RefTable({ capacity: maxVnodes }),
      new RefTable({ capacity: buffers }),
      { memory, blockSize, chunkSize, prefetch, maxReadahead, storeBehind, busyRetry, serverChannel, access: AccessCache.allocate(maxVnodes) },
      { channel },
      pags === undefined ? undefined : { table: pags, attached: false },
    );
    server.onCallbackBreak((fid) => cm.#callbackBroken(fid));
    return cm;
  }

  /**
   * Joins, on this thread, a cache created on another. RPCs go to the creating thread's
   * server unless `server` is given.
   */
  static attach(descriptor: CacheDescriptor, server?: FileServer): CacheManager {
    checkObject(descriptor, 'descriptor');
    if (descriptor.kind !== 'cmkit.CacheManager') {
      throw invalidArgType('descriptor', 'a CacheManager descriptor', descriptor);
    }
    const vnodes = RefTable.attach(descriptor.vnodeTable);
    let buffers: RefTable;
    try {
      buffers = RefTable.attach(descriptor.bufferTable);
    } catch (e) {
      vnodes.detach();
      throw e;
    }
    const remote = new RemoteFileServer(descriptor.serverChannel);
    const pags = descriptor.pags === undefined ? undefined : { table: PagTable.attach(descriptor.pags), attached: true };
    return new CacheManager(server ?? remote, vnodes, buffers, descriptor, { remote }, pags);
  }

  get descriptor(): CacheDescriptor {
    return {
      kind: 'cmkit.CacheManager',
      vnodeTable: this.#vnodes.descriptor,
      bufferTable: this.#buffers.descriptor,
      memory: this.#memory,
      blockSize: this.#blockSize,
      chunkSize: this.#chunkBlocks * this.#blockSize,
      prefetch: this.#prefetch,
      maxReadahead: this.#maxReadahead,
      storeBehind: this.#storeBehind,
      busyRetry: this.#busyRetry,
      serverChannel: this.#serverChannel,
      access: this.#accessMemory,
      pags: this.#pags?.descriptor,
    };
  }

  /** This thread's trace points: `cm.trace.enable(['fetch', 'store'])`. All off by default. */
  get trace(): Tracer {
    return this.#trace;
  }

  get blockSize(): number {
    return this.#blockSize;
  }

  /**
   * The one deliberate hatch for tests: the shared views and tables behind this cache.
   * Not part of the API; anything written through it can corrupt the cache.
   */
  unsafeExposeInternals(): { views: CacheViews; vnodes: RefTable; buffers: RefTable } {
    return { views: this.#v, vnodes: this.#vnodes, buffers: this.#buffers };
  }

  /** Counters shared by every thread of this cache. */
  stats(): CacheStats {
    return this.#v.readStats();
  }

  /** Reads up to `length` bytes at `offset`; shorter at end of file. */
  async read(fid: Fid, offset: number, length: number, caller?: Caller): Promise<Uint8Array> {
    this.#checkOpen('read');
    checkFidArg(fid);
    checkInteger(offset, 'offset', 0, MAX_SAFE);
    checkInteger(length, 'length', 0, MAX_SAFE - offset);
    this.#checkCaller(caller);
    return this.#read(fid, offset, length, undefined, caller);
  }

  /** Reads into `into` from `offset`; resolves to the number of bytes read. */
  async readInto(fid: Fid, offset: number, into: Uint8Array, caller?: Caller): Promise<number> {
    this.#checkOpen('readInto');
    checkFidArg(fid);
    checkInteger(offset, 'offset', 0, MAX_SAFE);
    if (!(into instanceof Uint8Array)) throw invalidArgType('into', 'an instance of Uint8Array', into);
    checkInteger(into.length, 'into.length', 0, MAX_SAFE - offset);
    this.#checkCaller(caller);
    return (await this.#read(fid, offset, into.length, into, caller)).length;
  }

  /** Writes `data` at `offset` into the cache; flush() stores it. */
  async write(fid: Fid, offset: number, data: Uint8Array, caller?: Caller): Promise<void> {
    this.#checkOpen('write');
    checkFidArg(fid);
    checkInteger(offset, 'offset', 0, MAX_SAFE);
    if (!(data instanceof Uint8Array)) throw invalidArgType('data', 'an instance of Uint8Array', data);
    checkInteger(data.length, 'data.length', 0, MAX_SAFE - offset);
    this.#checkCaller(caller);
    this.#trace.write(fid, offset, data.length);
    await this.#withVnode(fid, async (v) => {
      await this.#authorize(v, caller, Rights.Write);
      await this.#ensureStatus(v);
      let pos = offset;
      const end = offset + data.length;
      while (pos < end) {
        let need: Need | undefined;
        await v.lock.writeAsync();
        try {
          ({ pos, need } = this.#walkBlocks(pos, end, (at) => this.#writeBlock(v, at, end, data, offset)));
        } finally {
          v.lock.release();
        }
        if (need !== undefined) await this.#resolve(v, need, false);
      }
      if (this.#storeBehind) this.#queueStoreBehind(v);
    });
  }

  /** Sets the file's length. Bytes past a shrink are never fetched again; flush() stores it. */
  async truncate(fid: Fid, length: number, caller?: Caller): Promise<void> {
    this.#checkOpen('truncate');
    checkFidArg(fid);
    checkInteger(length, 'length', 0, MAX_SAFE);
    this.#checkCaller(caller);
    await this.#withVnode(fid, async (v) => {
      await this.#authorize(v, caller, Rights.Write);
      await this.#ensureStatus(v);
      await v.lock.writeAsync();
      try {
        this.#truncateLocked(v, length);
      } finally {
        v.lock.release();
      }
    });
  }

  /** Stores the file's dirty data and pending truncation; resolves once the server has it. */
  async flush(fid: Fid): Promise<void> {
    this.#checkOpen('flush');
    checkFidArg(fid);
    await this.#withVnode(fid, (v) => this.#flushVnode(v));
  }

  /** Flushes every file with dirty data. */
  async flushAll(): Promise<void> {
    this.#checkOpen('flushAll');
    await this.#flushAllDirty();
  }

  /** The file's status as this client sees it (length includes unstored writes). */
  async stat(fid: Fid): Promise<FileStatus> {
    this.#checkOpen('stat');
    checkFidArg(fid);
    return this.#withVnode(fid, async (v) => {
      await this.#ensureStatus(v);
      const F = this.#v.vnodeF64;
      return { dataVersion: F[v.f + VnodeF64.DataVersion]!, length: F[v.f + VnodeF64.Length]! };
    });
  }

  /**
   * Touches each page of the buffers' memory once (an atomic compare-exchange of 0 for 0,
   * which changes no byte), so that fetches never pay the kernel's first-touch page
   * faults: about 0.75 ms per MiB here, more than the copy itself. Safe while the cache
   * is in use. A long-lived host (a mount) calls it once at start.
   */
  prefault(): void {
    this.#checkOpen('prefault');
    const data = this.#v.data;
    for (let i = 0; i < data.length; i += PAGE_SIZE) Atomics.compareExchange(data, i, 0, 0);
  }

  /**
   * The file's length as this client sees it, if the cache holds a current status of it
   * (no callback break since); undefined otherwise. Never calls the server: a mount's
   * getattr uses it so that unstored writes show in the size.
   */
  cachedLength(fid: Fid): number | undefined {
    this.#checkOpen('cachedLength');
    checkFidArg(fid);
    const slot = this.#holdIfCurrent(fid);
    if (slot < 0) return undefined;
    try {
      return this.#v.vnodeF64[slot * VNODE_F64 + VnodeF64.Length]!;
    } finally {
      this.#vnodes.release(slot);
    }
  }

  /** Drops the file's clean buffers from the cache; resolves to how many were dropped. */
  async evict(fid: Fid): Promise<number> {
    this.#checkOpen('evict');
    checkFidArg(fid);
    return this.#withVnode(fid, async (v) => {
      await v.lock.writeAsync();
      try {
        let dropped = 0;
        this.#forEachBufferOf(v, 0, Infinity, (slot, state) => {
          if ((state & (BufferState.Dirty | BufferState.Busy)) !== 0 || (state & BufferState.Valid) === 0) return;
          // Held by someone besides us (a store in flight keeps its buffers held until
          // the server has them): not ours to drop.
          if (this.#buffers.refCount(slot) > 1) return;
          if (this.#isValid(v, slot, state)) this.#countCached(v, -1);
          Atomics.store(this.#v.headers, slot * HEADER_I32 + HeaderI32.State, 0);
          dropped++;
        });
        return dropped;
      } finally {
        v.lock.release();
      }
    });
  }

  /**
   * Waits for background fetches, flushes all dirty data, and leaves the cache. On the
   * creating thread it also closes the cache for every thread.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.backgroundSettled();
    await this.#flushAllDirty();
    this.#closed = true;
    if (this.#pagsAttached) this.#pags!.close();
    if ('channel' in this.#owned) {
      this.#owned.channel.close();
      this.#vnodes.close();
      this.#buffers.close();
    } else {
      this.#owned.remote.close();
      this.#vnodes.detach();
      this.#buffers.detach();
    }
  }

  // ---- vnodes -------------------------------------------------------------------------

  /** Runs `op` on fid's vnode, held (and so never recycled) until `op` settles. */
  async #withVnode<T>(fid: Fid, op: (v: Vnode) => Promise<T>): Promise<T> {
    const v = await this.#openVnode(fid);
    try {
      return await op(v);
    } finally {
      this.#vnodes.release(v.slot);
    }
  }

  async #openVnode(fid: Fid): Promise<Vnode> {
    const slot = this.#vnodes.getHold(fid, (s) => this.#initVnode(s, fid));
    const I = this.#v.vnodeI32;
    const i = slot * VNODE_I32;
    // The entry is ours to hold, but the thread that created it may still be writing the
    // record; its identity is written last.
    while (!identityIs(I, i + VnodeI32.Identity, fid.cell, fid.volume, fid.vnode, fid.unique)) await nextTurn();
    return {
      fid,
      slot,
      gen: Atomics.load(I, i + VnodeI32.Generation),
      f: slot * VNODE_F64,
      i,
      lock: new RwLock(I, i + VnodeI32.Lock, i + VnodeI32.WriteSeq),
    };
  }

  #initVnode(slot: number, fid: Fid): void {
    const F = this.#v.vnodeF64;
    const I = this.#v.vnodeI32;
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
    this.#access.clear(slot);
    Atomics.add(I, i + VnodeI32.Generation, 1);
    storeIdentity(I, i + VnodeI32.Identity, fid.cell, fid.volume, fid.vnode, fid.unique);
  }

  #callbackBroken(fid: Fid): void {
    if (this.#closed) return;
    const slot = this.#vnodes.findHold(fid);
    if (slot < 0) return;
    const i = slot * VNODE_I32;
    if (identityIs(this.#v.vnodeI32, i + VnodeI32.Identity, fid.cell, fid.volume, fid.vnode, fid.unique)) {
      Atomics.add(this.#v.vnodeI32, i + VnodeI32.BreakSeq, 1);
    }
    this.#vnodes.release(slot);
  }

  /**
   * Fetches the status unless the one we have is current (no callback break since).
   * `foreground`: a caller waits, so a busy server is retried.
   */
  async #ensureStatus(v: Vnode, foreground = true): Promise<void> {
    const I = this.#v.vnodeI32;
    const seq = Atomics.load(I, v.i + VnodeI32.BreakSeq);
    if (Atomics.load(I, v.i + VnodeI32.StatusSeq) === seq && this.#v.vnodeF64[v.f + VnodeF64.DataVersion]! >= 0) return;
    this.#v.count('statusRpcs');
    const status = await this.#rpc(() => this.#server.fetchStatus(v.fid), foreground);
    this.#trace.status(v.fid, status.dataVersion, status.length);
    await v.lock.writeAsync();
    try {
      this.#applyServerVersion(v, status.dataVersion, status.length);
      // A break that arrived while we asked leaves the status stale: seq is then behind.
      Atomics.store(I, v.i + VnodeI32.StatusSeq, seq);
    } finally {
      v.lock.release();
    }
  }

  /** Under the write lock: the server said the file is at `version` with `length`. */
  #applyServerVersion(v: Vnode, version: number, length: number): void {
    const F = this.#v.vnodeF64;
    const I = this.#v.vnodeI32;
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
      Atomics.store(I, v.i + VnodeI32.Cached, this.#dirtyCount(v));
      F[v.f + VnodeF64.ServerLength] = length;
      // Unstored writes and truncations of ours, and those being stored, still decide
      // the length we show.
      if ((Atomics.load(I, v.i + VnodeI32.Flags) & VNODE_DIRTY_HELD) === 0 && inFlight === 0) F[v.f + VnodeF64.Length] = length;
    }
  }

  /** The first byte that is never fetched: min(pending truncation, server length). */
  #zeroPoint(v: Vnode): number {
    const F = this.#v.vnodeF64;
    return Math.min(F[v.f + VnodeF64.TruncPos]!, F[v.f + VnodeF64.InFlightTruncPos]!, F[v.f + VnodeF64.ServerLength]!);
  }

  /** Under the write lock: keeps the vnode (and so its record) held until it is stored. */
  #markVnodeDirty(v: Vnode): void {
    const I = this.#v.vnodeI32;
    const flags = Atomics.load(I, v.i + VnodeI32.Flags);
    if ((flags & VNODE_DIRTY_HELD) !== 0) return;
    // The file's own reference, until it is stored: no thread's, so no thread's exit drops it.
    this.#vnodes.hold(v.slot);
    this.#vnodes.disown(v.slot);
    Atomics.or(I, v.i + VnodeI32.Flags, VNODE_DIRTY_HELD);
  }

  // ---- buffers ------------------------------------------------------------------------

  /** Holds the buffer for block `block` of v, or returns why not. Caller releases it. */
  #holdBuffer(v: Vnode, block: number): number | Need {
    let slot: number;
    try {
      slot = this.#buffers.getHoldKey(v.slot, v.gen, block >>> 0, Math.floor(block / 2 ** 32));
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_CMKIT_TABLE_FULL') return FULL;
      throw e;
    }
    if (this.#buffers.created) this.#initBuffer(slot, v, block);
    if (!identityIs(this.#v.headers, slot * HEADER_I32 + HeaderI32.Identity, v.slot, v.gen, block >>> 0, Math.floor(block / 2 ** 32))) {
      this.#buffers.release(slot); // still being set up by the thread that created it
      return RETRY;
    }
    return slot;
  }

  #initBuffer(slot: number, v: Vnode, block: number): void {
    const H = this.#v.headers;
    const h = slot * HEADER_I32;
    this.#forgetPreviousOwner(slot);
    Atomics.store(H, h + HeaderI32.State, 0);
    Atomics.store(H, h + HeaderI32.DirtyNext, -1);
    Atomics.store(H, h + HeaderI32.DirtyPrev, -1);
    this.#v.versions[slot] = -1;
    storeIdentity(H, h + HeaderI32.Identity, v.slot, v.gen, block >>> 0, Math.floor(block / 2 ** 32));
  }

  /** A recycled buffer no longer counts among its previous file's cached buffers. */
  #forgetPreviousOwner(slot: number): void {
    const H = this.#v.headers;
    const h = slot * HEADER_I32;
    const state = Atomics.load(H, h + HeaderI32.State);
    const owner = Atomics.load(H, h + HeaderI32.Identity);
    if ((state & BufferState.Valid) === 0 || owner < 0 || owner * VNODE_I32 >= this.#v.vnodeI32.length) return;
    const I = this.#v.vnodeI32;
    const i = owner * VNODE_I32;
    if (Atomics.load(I, i + VnodeI32.Generation) !== Atomics.load(H, h + HeaderI32.Identity + 1)) return;
    const F = this.#v.vnodeF64;
    const f = owner * VNODE_F64;
    if (isBufferValid(F[f + VnodeF64.BufDataVersionLow]!, this.#v.versions[slot]!, F[f + VnodeF64.DataVersion]!)) {
      Atomics.sub(I, i + VnodeI32.Cached, 1);
    }
  }

  /** Under the vnode lock: buffer `slot` of v just became valid (+1) or stopped being (-1). */
  #countCached(v: Vnode, delta: number): void {
    Atomics.add(this.#v.vnodeI32, v.i + VnodeI32.Cached, delta);
  }

  #dirtyCount(v: Vnode): number {
    return Atomics.load(this.#v.vnodeI32, v.i + VnodeI32.DirtyCount);
  }

  #isValid(v: Vnode, slot: number, state: number): boolean {
    // Dirty, or in a store not yet answered: our bytes are newer than the server's, so
    // no version the server reports may send the buffer to be fetched again.
    if ((state & (BufferState.Dirty | BufferState.Storing)) !== 0) return true;
    if ((state & BufferState.Valid) === 0) return false;
    const F = this.#v.vnodeF64;
    return isBufferValid(F[v.f + VnodeF64.BufDataVersionLow]!, this.#v.versions[slot]!, F[v.f + VnodeF64.DataVersion]!);
  }

  /**
   * Calls fn(slot, state) for each buffer of v holding a block in [fromBlock, toBlock),
   * held for the call. Looks the blocks up when they are fewer than the buffers, and
   * scans every header otherwise, so the cost is bounded by the smaller of the two.
   */
  #forEachBufferOf(v: Vnode, fromBlock: number, toBlock: number, fn: (slot: number, state: number) => void): void {
    const H = this.#v.headers;
    if (toBlock - fromBlock <= this.#bufferCount) {
      for (let block = fromBlock; block < toBlock; block++) {
        const slot = this.#buffers.findHoldKey(v.slot, v.gen, block >>> 0, Math.floor(block / 2 ** 32));
        if (slot < 0) continue;
        if (identityIs(H, slot * HEADER_I32 + HeaderI32.Identity, v.slot, v.gen, block >>> 0, Math.floor(block / 2 ** 32))) {
          fn(slot, Atomics.load(H, slot * HEADER_I32 + HeaderI32.State));
        }
        this.#buffers.release(slot);
      }
      return;
    }
    for (let slot = 0; slot < this.#bufferCount; slot++) {
      const h = slot * HEADER_I32;
      if (Atomics.load(H, h + HeaderI32.Identity) !== v.slot || Atomics.load(H, h + HeaderI32.Identity + 1) !== v.gen) continue;
      const block = blockOf(H, h);
      if (block < fromBlock || block >= toBlock) continue;
      // Hold it so it cannot be recycled under us, then check it is still this block.
      const held = this.#buffers.findHoldKey(v.slot, v.gen, block >>> 0, Math.floor(block / 2 ** 32));
      if (held === slot) fn(slot, Atomics.load(H, h + HeaderI32.State));
      if (held >= 0) this.#buffers.release(held);
    }
  }

  /**
   * Under the vnode lock: claims `first` (held, not valid, not busy) and the blocks after
   * it up to the end of its chunk, the zero point or the first that is valid or busy.
   * With prefetch off, also no further than `requestEnd` (a byte offset): rounding a
   * miss up to its chunk is readahead too. The claimed buffers stay held and Busy until
   * #fetchRun ends.
   */
  #claimRun(v: Vnode, firstBlock: number, firstSlot: number, firstState: number, requestEnd: number): Need {
    const H = this.#v.headers;
    const hs = firstSlot * HEADER_I32 + HeaderI32.State;
    if (Atomics.compareExchange(H, hs, firstState, CLAIMED) !== firstState) {
      this.#buffers.release(firstSlot);
      return RETRY;
    }
    const slots = [firstSlot];
    const limit = Math.min(
      (Math.floor(firstBlock / this.#chunkBlocks) + 1) * this.#chunkBlocks,
      Math.ceil(Math.min(this.#zeroPoint(v), this.#v.vnodeF64[v.f + VnodeF64.Length]!) / this.#blockSize),
      this.#prefetch ? Infinity : Math.ceil(requestEnd / this.#blockSize),
    );
    for (let block = firstBlock + 1; block < limit; block++) {
      if (!this.#claimNext(v, block, slots)) break;
    }
    return { kind: 'fetch', run: { firstBlock, slots } };
  }

  /** Claims one more block for a run; false (claiming nothing) if it is valid or busy. */
  #claimNext(v: Vnode, block: number, slots: number[]): boolean {
    const held = this.#holdBuffer(v, block);
    if (typeof held !== 'number') return false;
    const hs = held * HEADER_I32 + HeaderI32.State;
    const state = Atomics.load(this.#v.headers, hs);
    if ((state & BufferState.Busy) !== 0 || this.#isValid(v, held, state) ||
        Atomics.compareExchange(this.#v.headers, hs, state, CLAIMED) !== state) {
      this.#buffers.release(held);
      return false;
    }
    slots.push(held);
    return true;
  }

  /** Fetches a claimed run and fills its buffers; always ends their Busy state. */
  async #fetchRun(v: Vnode, run: Run, prefetched: boolean): Promise<void> {
    const bs = this.#blockSize;
    const H = this.#v.headers;
    const start = run.firstBlock * bs;
    this.#v.count('fetchRpcs');
    if (prefetched) {
      this.#v.count('prefetchesIssued');
      this.#v.count('prefetchBlocks', run.slots.length);
    }
    let filled = false;
    this.#trace.fetch(v.fid, start, run.slots.length * bs);
    try {
      const fetch = (): Promise<FetchResult> => this.#server.fetchData(v.fid, start, run.slots.length * bs);
      const result = await this.#rpc(fetch, !prefetched);
      this.#v.count('fetchBytes', result.data.length);
      // A holder of its own: the runs of one prefetch window fill concurrently.
      const lock = new RwLock(this.#v.vnodeI32, v.i + VnodeI32.Lock, v.i + VnodeI32.WriteSeq);
      await lock.writeAsync();
      try {
        this.#applyServerVersion(v, result.dataVersion, result.length);
        // Bytes served before a store of ours that has since landed may predate it (a
        // truncation it carried, say): keep only what is of the current version.
        if (result.dataVersion !== this.#v.vnodeF64[v.f + VnodeF64.DataVersion]) return;
        const zeroPoint = this.#zeroPoint(v);
        const data = this.#v.data;
        run.slots.forEach((slot, k) => {
          const base = slot * bs;
          const blockStart = start + k * bs;
          const got = Math.max(0, Math.min(bs, result.data.length - k * bs, zeroPoint - blockStart));
          data.set(result.data.subarray(k * bs, k * bs + got), base);
          this.#zero(base + got, base + bs);
          this.#v.versions[slot] = result.dataVersion;
          const state = BufferState.Valid | (prefetched ? BufferState.Prefetched : 0);
          Atomics.store(H, slot * HEADER_I32 + HeaderI32.State, state);
          if (this.#isValid(v, slot, state)) this.#countCached(v, 1);
        });
        filled = true;
      } finally {
        lock.release();
      }
    } finally {
      for (const slot of run.slots) {
        if (!filled) Atomics.store(H, slot * HEADER_I32 + HeaderI32.State, 0);
        Atomics.notify(H, slot * HEADER_I32 + HeaderI32.State);
        this.#buffers.release(slot);
      }
    }
  }

  /** Does, without the vnode lock, what a locked pass said it needs. */
  async #resolve(v: Vnode, need: Need, prefetched: boolean): Promise<void> {
    switch (need.kind) {
      case 'fetch':
        return this.#fetchRun(v, need.run, prefetched);
      case 'busy': {
        const hs = need.slot * HEADER_I32 + HeaderI32.State;
        const r = Atomics.waitAsync(this.#v.headers, hs, need.state, BUSY_WAIT_SLICE_MS);
        if ((r.async ? await r.value : r.value) !== 'timed-out') return;
        // Still claimed after a whole slice: if its claimer has exited (a terminated
        // worker), nobody will finish the fetch. Take the buffer back; its reference was
        // released with the rest of that thread's holds.
        if (!threadAlive(claimerOf(need.state)) && Atomics.compareExchange(this.#v.headers, hs, need.state, 0) === need.state) {
          this.#v.count('claimsTakenBack');
          Atomics.notify(this.#v.headers, hs);
        }
        return;
      }
      case 'retry':
        await nextTurn();
        return;
      case 'full':
        // Every buffer is held; most are dirty. Storing them releases their holds.
        if (!(await this.#flushAllDirty())) {
          throw Object.assign(new Error('the cache is full of buffers in use; make cacheSize larger'), {
            code: 'ERR_CMKIT_TABLE_FULL',
          });
        }
    }
  }

  // ---- read ---------------------------------------------------------------------------

  async #read(fid: Fid, offset: number, length: number, into: Uint8Array | undefined, caller: Caller | undefined): Promise<Uint8Array> {
    this.#trace.read(fid, offset, length);
    return this.#readCached(fid, offset, length, into, caller) ?? this.#readSlow(fid, offset, length, into, caller);
  }

  /**
   * The hit path, without a single await or a shared write: the file's status is
   * current, no writer holds its lock, and every block asked for is valid. (On a miss
   * after copying, `into` may hold bytes the slow path then overwrites.) Anything else returns undefined, having
   * changed nothing, and the caller takes the slow path.
   */
  #readCached(fid: Fid, offset: number, length: number, into: Uint8Array | undefined, caller: Caller | undefined): Uint8Array | undefined {
    const slot = this.#holdIfCurrent(fid);
    if (slot < 0) return undefined;
    try {
      const I = this.#v.vnodeI32;
      const F = this.#v.vnodeF64;
      const i = slot * VNODE_I32;
      const f = slot * VNODE_F64;
      let lock = this.#syncLocks.get(slot);
      if (lock === undefined) {
        lock = new RwLock(I, i + VnodeI32.Lock, i + VnodeI32.WriteSeq);
        this.#syncLocks.set(slot, lock);
      }
      // An optimistic read: no shared write, so readers on every thread run in parallel;
      // a writer that came in meanwhile (a fill, a write, a truncate) fails the check
      // below, and the slow path, under the lock, reads again.
      const stamp = lock.optimisticRead();
      if (stamp < 0) return undefined;
      const v: Vnode = { fid, slot, gen: Atomics.load(I, i + VnodeI32.Generation), f, i, lock };
      if (caller !== undefined && !this.#cachedRightsAllow(v, caller, Rights.Read)) return undefined;
      const end = Math.max(offset, Math.min(offset + length, F[f + VnodeF64.Length]!));
      const out = into ?? new Uint8Array(end - offset);
      let blocks = 0;
      for (let pos = offset; pos < end; blocks++) {
        const n = this.#copyIfValid(v, pos, end, out, offset);
        if (n === 0) return undefined;
        pos += n;
      }
      if (!lock.validate(stamp)) return undefined;
      this.#v.count('hits', blocks);
      if (this.#prefetch) this.#startReadahead(fid, slot, v.gen, offset, end - offset);
      return out.subarray(0, end - offset);
    } finally {
      this.#vnodes.release(slot);
    }
  }

  /**
   * Without an RPC or a lock: fid's vnode slot, held, if the cache has it with a current
   * status (no callback break since it was fetched); -1 otherwise. The caller releases it.
   */
  #holdIfCurrent(fid: Fid): number {
    const slot = this.#vnodes.findHold(fid);
    if (slot < 0) return -1;
    const I = this.#v.vnodeI32;
    const i = slot * VNODE_I32;
    const current =
      identityIs(I, i + VnodeI32.Identity, fid.cell, fid.volume, fid.vnode, fid.unique) &&
      Atomics.load(I, i + VnodeI32.StatusSeq) === Atomics.load(I, i + VnodeI32.BreakSeq) &&
      this.#v.vnodeF64[slot * VNODE_F64 + VnodeF64.DataVersion]! >= 0;
    if (current) return slot;
    this.#vnodes.release(slot);
    return -1;
  }

  /** Under the read lock or an optimistic read: copies from one block if it is cached and valid; 0 if not. */
  #copyIfValid(v: Vnode, pos: number, end: number, out: Uint8Array, outBase: number): number {
    const bs = this.#blockSize;
    const block = Math.floor(pos / bs);
    const slot = this.#buffers.findHoldKey(v.slot, v.gen, block >>> 0, Math.floor(block / 2 ** 32));
    if (slot < 0) return 0;
    try {
      const H = this.#v.headers;
      const hs = slot * HEADER_I32 + HeaderI32.State;
      const state = Atomics.load(H, hs);
      if (!identityIs(H, slot * HEADER_I32 + HeaderI32.Identity, v.slot, v.gen, block >>> 0, Math.floor(block / 2 ** 32)) ||
          (state & BufferState.Busy) !== 0 || !this.#isValid(v, slot, state)) {
        return 0;
      }
      this.#notePrefetchUse(hs, state);
      const within = pos - block * bs;
      const n = Math.min(bs - within, end - pos);
      const src = slot * bs + within;
      out.set(this.#v.data.subarray(src, src + n), pos - outBase);
      return n;
    } finally {
      this.#buffers.release(slot);
    }
  }

  /**
   * Zeroes data[from, to), at most one block. TypedArray fill on shared memory takes a
   * slow path in V8 (about 5x a copy); copying from a zero block does not.
   */
  #zero(from: number, to: number): void {
    if (to > from) this.#v.data.set(this.#zeros.subarray(0, to - from), from);
  }

  /** Counts the first read of a block that prefetch brought in. */
  #notePrefetchUse(hs: number, state: number): void {
    if ((state & BufferState.Prefetched) !== 0 &&
        Atomics.compareExchange(this.#v.headers, hs, state, state & ~BufferState.Prefetched) === state) {
      this.#v.count('prefetchBlocksUsed');
    }
  }

  #readSlow(fid: Fid, offset: number, length: number, into: Uint8Array | undefined, caller: Caller | undefined): Promise<Uint8Array> {
    return this.#withVnode(fid, async (v) => {
      await this.#authorize(v, caller, Rights.Read);
      await this.#ensureStatus(v);
      let out = into;
      let pos = offset;
      let end = offset;
      for (;;) {
        let need: Need | undefined;
        await v.lock.readAsync();
        try {
          end = Math.max(offset, Math.min(offset + length, this.#v.vnodeF64[v.f + VnodeF64.Length]!));
          // The length may change between passes; the first pass sizes the result.
          out ??= new Uint8Array(end - offset);
          end = Math.min(end, offset + out.length);
          const o = out;
          ({ pos, need } = this.#walkBlocks(pos, end, (at) => this.#readBlock(v, at, end, o, offset)));
        } finally {
          v.lock.release();
        }
        if (need === undefined) break;
        await this.#resolve(v, need, false);
      }
      if (this.#prefetch) this.#startReadahead(fid, v.slot, v.gen, offset, end - offset);
      return out!.subarray(0, end - offset);
    });
  }

  /**
   * Under the vnode lock: runs `step` from `pos` block by block until `end`, or until a
   * step says what it needs first (to be resolved without the lock).
   */
  #walkBlocks(pos: number, end: number, step: (pos: number) => number | Need): { pos: number; need: Need | undefined } {
    while (pos < end) {
      const r = step(pos);
      if (typeof r !== 'number') return { pos, need: r };
      pos += r;
    }
    return { pos, need: undefined };
  }

  /** Under the read lock: copies from one block, or says what is needed first. */
  #readBlock(v: Vnode, pos: number, end: number, out: Uint8Array, outBase: number): number | Need {
    const bs = this.#blockSize;
    const block = Math.floor(pos / bs);
    const within = pos - block * bs;
    const n = Math.min(bs - within, end - pos);
    const slot = this.#holdBuffer(v, block);
    if (typeof slot !== 'number') return slot;
    const H = this.#v.headers;
    const hs = slot * HEADER_I32 + HeaderI32.State;
    let state = Atomics.load(H, hs);
    if ((state & BufferState.Busy) !== 0) {
      this.#buffers.release(slot);
      return { kind: 'busy', slot, state };
    }
    if (!this.#isValid(v, slot, state)) {
      if (block * bs < this.#zeroPoint(v)) {
        this.#v.count('misses');
        return this.#claimRun(v, block, slot, state, end); // keeps the hold
      }
      // Past a pending truncation or the server's length: zeros, made here.
      if (Atomics.compareExchange(H, hs, state, CLAIMED) !== state) {
        this.#buffers.release(slot);
        return RETRY;
      }
      this.#zero(slot * bs, slot * bs + bs);
      this.#v.versions[slot] = this.#v.vnodeF64[v.f + VnodeF64.DataVersion]!;
      state = BufferState.Valid;
      Atomics.store(H, hs, state);
      Atomics.notify(H, hs);
      this.#countCached(v, 1);
      this.#v.count('fetchesAvoidedByTruncation');
    } else {
      this.#v.count('hits');
      this.#notePrefetchUse(hs, state);
    }
    const src = slot * bs + within;
    out.set(this.#v.data.subarray(src, src + n), pos - outBase);
    this.#buffers.release(slot);
    return n;
  }

  // ---- prefetch -----------------------------------------------------------------------

  /** Called while the caller holds a reference on `slot`. */
  #startReadahead(fid: Fid, slot: number, gen: number, offset: number, length: number): void {
    const key = `${slot}.${gen}`;
    let ra = this.#readahead.get(key);
    if (ra === undefined) {
      if (this.#readahead.size >= READAHEAD_STREAMS) this.#readahead.delete(this.#readahead.keys().next().value!);
      ra = new Readahead(this.#maxReadahead);
      this.#readahead.set(key, ra);
    }
    const window = ra.onRead(offset, length);
    if (window === undefined) return;
    this.#schedule({ kind: 'prefetch', fid: fid.toJSON(), start: window.start, end: window.start + window.length });
  }

  /** Claims and fetches, chunk by chunk, the blocks of [start, end) that need it. */
  async #prefetchWindow(v: Vnode, start: number, end: number): Promise<void> {
    const bs = this.#blockSize;
    const runs: Run[] = [];
    await v.lock.readAsync();
    try {
      const stop = Math.min(end, this.#zeroPoint(v), this.#v.vnodeF64[v.f + VnodeF64.Length]!);
      for (let block = Math.floor(start / bs); block * bs < stop; block++) {
        const slot = this.#holdBuffer(v, block);
        if (typeof slot !== 'number') {
          if (slot.kind === 'full') break;
          continue;
        }
        const state = Atomics.load(this.#v.headers, slot * HEADER_I32 + HeaderI32.State);
        if ((state & BufferState.Busy) !== 0 || this.#isValid(v, slot, state)) {
          this.#buffers.release(slot);
          continue;
        }
        const need = this.#claimRun(v, block, slot, state, end);
        if (need.kind === 'fetch') {
          runs.push(need.run);
          block = need.run.firstBlock + need.run.slots.length - 1;
        }
      }
    } finally {
      v.lock.release();
    }
    await Promise.all(runs.map((run) => this.#fetchRun(v, run, true)));
  }

  // ---- background work ----------------------------------------------------------------

  /**
   * Sends this thread's background jobs to `runner` instead of running them here; a pool
   * does this in its workers. undefined restores the default.
   */
  setBackgroundRunner(runner: BackgroundRunner | undefined): void {
    if (runner !== undefined && typeof runner !== 'function') throw invalidArgType('runner', 'a function', runner);
    this.#runBackgroundJob = runner ?? ((job) => this.runBackground(job));
  }

  /**
   * Runs a background job made by any thread of this cache. Never rejects: a failure is
   * counted (backgroundFailures, and storeBehindFailures for a store) and its data stays
   * dirty; a prefetch that fails is only a missed chance, the reader fetches on demand.
   */
  async runBackground(job: BackgroundJob): Promise<void> {
    this.#checkOpen('runBackground');
    const { fid } = checkBackgroundJob(job);
    try {
      await this.#withVnode(fid, async (v) => {
        if (job.kind === 'store') return this.#storeBehindVnode(v);
        await this.#ensureStatus(v, false);
        await this.#prefetchWindow(v, job.start, job.end);
      });
    } catch {
      this.#v.count('backgroundFailures');
      if (job.kind === 'store') this.#v.count('storeBehindFailures');
    }
  }

  /** Resolves once the background jobs this thread started (and any they started) have run. */
  async backgroundSettled(): Promise<void> {
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
  }

  #schedule(job: BackgroundJob): void {
    const run = this.#runBackgroundJob(job)
      .catch(() => this.#v.count('backgroundFailures'))
      .finally(() => this.#background.delete(run));
    this.#background.add(run);
  }

  // ---- write and truncate -------------------------------------------------------------

  /** Under the write lock: copies into one block, or says what is needed first. */
  #writeBlock(v: Vnode, pos: number, end: number, data: Uint8Array, dataBase: number): number | Need {
    const bs = this.#blockSize;
    const block = Math.floor(pos / bs);
    const blockStart = block * bs;
    const within = pos - blockStart;
    const n = Math.min(bs - within, end - pos);
    const slot = this.#holdBuffer(v, block);
    if (typeof slot !== 'number') return slot;
    const H = this.#v.headers;
    const h = slot * HEADER_I32;
    let state = Atomics.load(H, h + HeaderI32.State);
    if ((state & BufferState.Busy) !== 0) {
      this.#buffers.release(slot);
      return { kind: 'busy', slot, state };
    }
    const F = this.#v.vnodeF64;
    if (!this.#isValid(v, slot, state)) {
      // The bytes this write leaves alone must be known, unless they are zeros by rule.
      const zeroPoint = this.#zeroPoint(v);
      const headUnknown = within > 0 && blockStart < zeroPoint;
      const tailUnknown = pos + n < blockStart + bs && pos + n < zeroPoint;
      if (headUnknown || tailUnknown) {
        this.#v.count('misses');
        return this.#claimRun(v, block, slot, state, pos + n);
      }
      if (n < bs && blockStart < F[v.f + VnodeF64.ServerLength]!) this.#v.count('fetchesAvoidedByTruncation');
      // Only what this write leaves alone needs zeros; the rest it overwrites.
      this.#zero(slot * bs, slot * bs + within);
      this.#zero(slot * bs + within + n, slot * bs + bs);
      state = BufferState.Valid;
      this.#countCached(v, 1);
    }
    this.#v.data.set(data.subarray(pos - dataBase, pos - dataBase + n), slot * bs + within);
    this.#v.versions[slot] = F[v.f + VnodeF64.DataVersion]!;
    if ((state & BufferState.Dirty) === 0) {
      this.#linkDirty(v, slot);
      this.#markVnodeDirty(v);
      Atomics.store(H, h + HeaderI32.State, (state & ~BufferState.Prefetched) | BufferState.Valid | BufferState.Dirty);
      // The lookup's reference becomes the dirty hold: a dirty buffer is never recycled,
      // and the hold belongs to the cache, not to this thread, until the data is stored.
      this.#buffers.disown(slot);
    } else {
      this.#buffers.release(slot);
    }
    if (pos + n > F[v.f + VnodeF64.Length]!) F[v.f + VnodeF64.Length] = pos + n;
    return n;
  }

  #linkDirty(v: Vnode, slot: number): void {
    const H = this.#v.headers;
    const I = this.#v.vnodeI32;
    const head = Atomics.load(I, v.i + VnodeI32.DirtyHead);
    Atomics.store(H, slot * HEADER_I32 + HeaderI32.DirtyNext, head);
    Atomics.store(H, slot * HEADER_I32 + HeaderI32.DirtyPrev, -1);
    if (head >= 0) Atomics.store(H, head * HEADER_I32 + HeaderI32.DirtyPrev, slot);
    Atomics.store(I, v.i + VnodeI32.DirtyHead, slot);
    Atomics.add(I, v.i + VnodeI32.DirtyCount, 1);
  }

  #unlinkDirty(v: Vnode, slot: number): void {
    const H = this.#v.headers;
    const h = slot * HEADER_I32;
    const next = Atomics.load(H, h + HeaderI32.DirtyNext);
    const prev = Atomics.load(H, h + HeaderI32.DirtyPrev);
    if (prev >= 0) Atomics.store(H, prev * HEADER_I32 + HeaderI32.DirtyNext, next);
    else Atomics.store(this.#v.vnodeI32, v.i + VnodeI32.DirtyHead, next);
    if (next >= 0) Atomics.store(H, next * HEADER_I32 + HeaderI32.DirtyPrev, prev);
    Atomics.store(H, h + HeaderI32.DirtyNext, -1);
    Atomics.store(H, h + HeaderI32.DirtyPrev, -1);
    Atomics.sub(this.#v.vnodeI32, v.i + VnodeI32.DirtyCount, 1);
  }

  #truncateLocked(v: Vnode, length: number): void {
    const F = this.#v.vnodeF64;
    const H = this.#v.headers;
    const bs = this.#blockSize;
    const oldLength = F[v.f + VnodeF64.Length]!;
    if (length < oldLength) {
      this.#forEachBufferOf(v, Math.floor(length / bs), Math.ceil(oldLength / bs), (slot, state) => {
        // A buffer being fetched is zeroed past the zero point when it is filled.
        if ((state & BufferState.Busy) !== 0) return;
        const blockStart = blockOf(H, slot * HEADER_I32) * bs;
        if (blockStart >= length) {
          if (this.#isValid(v, slot, state)) this.#countCached(v, -1);
          if ((state & BufferState.Dirty) !== 0) {
            this.#unlinkDirty(v, slot);
            this.#buffers.releaseDisowned(slot); // the dirty hold
          }
          Atomics.store(H, slot * HEADER_I32 + HeaderI32.State, 0);
        } else if ((state & BufferState.Valid) !== 0) {
          this.#zero(slot * bs + (length - blockStart), slot * bs + bs);
        }
      });
      F[v.f + VnodeF64.TruncPos] = Math.min(F[v.f + VnodeF64.TruncPos]!, length);
    }
    F[v.f + VnodeF64.Length] = length;
    this.#markVnodeDirty(v);
  }

  // ---- store --------------------------------------------------------------------------

  /**
   * Stores v's dirty buffers and pending truncation, in chunk-sized runs. A store already
   * in flight (another flush, or store-behind) is waited for first, and what it failed to
   * store is dirty again and goes in ours: so flush resolves only once every byte written
   * before it is on the server, and rejects with the error that kept some from it.
   */
  async #flushVnode(v: Vnode): Promise<void> {
    const I = this.#v.vnodeI32;
    for (;;) {
      const { batch, inFlight } = await this.#takeBatchIf(v, () => (Atomics.load(I, v.i + VnodeI32.Flags) & VNODE_DIRTY_HELD) !== 0);
      if (batch !== undefined) return this.#store(v, batch, true);
      if (inFlight === 0) return;
      await this.#storesAnswered(v, inFlight);
    }
  }

  /** After a write: a chunk or more of dirty data is stored in the background. */
  #queueStoreBehind(v: Vnode): void {
    const I = this.#v.vnodeI32;
    if (this.#dirtyCount(v) < this.#chunkBlocks) return;
    if ((Atomics.or(I, v.i + VnodeI32.Flags, VNODE_STORE_QUEUED) & VNODE_STORE_QUEUED) !== 0) return;
    this.#schedule({ kind: 'store', fid: v.fid.toJSON() });
  }

  /**
   * The store-behind job: stores v's dirty data while there is a chunk or more of it,
   * without retries (a busy server fails it; the data stays dirty for flush).
   */
  async #storeBehindVnode(v: Vnode): Promise<void> {
    const I = this.#v.vnodeI32;
    try {
      for (;;) {
        const { batch, inFlight } = await this.#takeBatchIf(v, () => this.#dirtyCount(v) >= this.#chunkBlocks);
        if (batch !== undefined) {
          this.#v.count('storeBehindBatches');
          await this.#store(v, batch, false);
        } else if (inFlight === 0) {
          return;
        } else {
          await this.#storesAnswered(v, inFlight);
        }
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
  async #takeBatchIf(v: Vnode, wanted: () => boolean): Promise<{ batch?: StoreBatch; inFlight: number }> {
    await v.lock.writeAsync();
    try {
      const inFlight = this.#storesInFlight(v);
      if (inFlight > 0) return { inFlight };
      return wanted() ? { batch: this.#takeDirty(v), inFlight: 0 } : { inFlight: 0 };
    } finally {
      v.lock.release();
    }
  }

  /**
   * Under the write lock: v's store RPCs not yet answered. One batch in flight per file:
   * a block written again while an older batch is stored must reach the server after it.
   */
  #storesInFlight(v: Vnode): number {
    const I = this.#v.vnodeI32;
    const inFlight = Atomics.load(I, v.i + VnodeI32.StoresInFlight);
    if (inFlight > 0 && !threadAlive(Atomics.load(I, v.i + VnodeI32.StoreOwner))) {
      this.#reclaimBatchOfDeadThread(v);
      return 0;
    }
    return inFlight;
  }

  /** Waits, unlocked, until v's store RPCs in flight are no longer `inFlight`. */
  async #storesAnswered(v: Vnode, inFlight: number): Promise<void> {
    const r = Atomics.waitAsync(this.#v.vnodeI32, v.i + VnodeI32.StoresInFlight, inFlight, 1000);
    if (r.async) await r.value;
  }

  /**
   * Under the write lock: the thread storing v's batch exited before the server answered
   * (a terminated worker). Its buffers, still marked Storing, become dirty again, so the
   * next store sends them; nothing it was storing is lost.
   */
  #reclaimBatchOfDeadThread(v: Vnode): void {
    this.#forEachBufferOf(v, 0, Infinity, (slot, state) => {
      if ((state & BufferState.Storing) !== 0) this.#returnToDirty(v, slot);
    });
    Atomics.store(this.#v.vnodeI32, v.i + VnodeI32.StoresInFlight, 0);
    this.#returnTruncation(v);
    this.#returnVnodeHold(v);
    this.#v.count('batchesReclaimed');
  }

  /**
   * Under the write lock: the batch in flight may not have truncated the file on the
   * server, so its truncation is pending again (sending it twice is harmless: everything
   * written past it since is dirty again too).
   */
  #returnTruncation(v: Vnode): void {
    const F = this.#v.vnodeF64;
    F[v.f + VnodeF64.TruncPos] = Math.min(F[v.f + VnodeF64.TruncPos]!, F[v.f + VnodeF64.InFlightTruncPos]!);
    F[v.f + VnodeF64.InFlightTruncPos] = Infinity;
  }

  /** Under the write lock: a buffer of an unanswered store batch is dirty again. */
  #returnToDirty(v: Vnode, slot: number): void {
    const H = this.#v.headers;
    const hs = slot * HEADER_I32 + HeaderI32.State;
    const state = Atomics.and(H, hs, ~BufferState.Storing);
    if ((state & BufferState.Dirty) !== 0) {
      this.#buffers.releaseDisowned(slot); // written again meanwhile: it has a newer hold
    } else if ((state & BufferState.Valid) !== 0) {
      this.#linkDirty(v, slot); // the batch's hold becomes the dirty hold again
      Atomics.or(H, hs, BufferState.Dirty);
    } else {
      this.#buffers.releaseDisowned(slot); // truncated away meanwhile
    }
  }

  /** Under the write lock: the batch's hold on the vnode goes back to the dirty file. */
  #returnVnodeHold(v: Vnode): void {
    const I = this.#v.vnodeI32;
    const flags = Atomics.load(I, v.i + VnodeI32.Flags);
    if ((flags & VNODE_DIRTY_HELD) !== 0) this.#vnodes.releaseDisowned(v.slot);
    else Atomics.or(I, v.i + VnodeI32.Flags, VNODE_DIRTY_HELD);
  }

  /** Under the write lock: takes v's dirty state into a batch of stores. */
  #takeDirty(v: Vnode): StoreBatch {
    const H = this.#v.headers;
    const I = this.#v.vnodeI32;
    const F = this.#v.vnodeF64;
    const bs = this.#blockSize;
    const slots: number[] = [];
    for (let s = Atomics.load(I, v.i + VnodeI32.DirtyHead); s >= 0; s = Atomics.load(H, s * HEADER_I32 + HeaderI32.DirtyNext)) {
      slots.push(s);
    }
    const length = F[v.f + VnodeF64.Length]!;
    slots.sort((a, b) => blockOf(H, a * HEADER_I32) - blockOf(H, b * HEADER_I32));
    const stores: PendingStore[] = [];
    for (const slot of slots) {
      const block = blockOf(H, slot * HEADER_I32);
      const last = stores[stores.length - 1];
      if (last !== undefined && last.firstBlock + last.slots.length === block && last.slots.length < this.#chunkBlocks) {
        last.slots.push(slot);
      } else {
        stores.push({ firstBlock: block, slots: [slot], bytes: new Uint8Array(0) });
      }
      const hs = slot * HEADER_I32 + HeaderI32.State;
      Atomics.store(H, hs, (Atomics.load(H, hs) & ~BufferState.Dirty) | BufferState.Storing);
    }
    const data = this.#v.data;
    for (const st of stores) {
      const start = st.firstBlock * bs;
      const n = Math.max(0, Math.min(st.slots.length * bs, length - start));
      st.bytes = new Uint8Array(n);
      for (let k = 0; k < st.slots.length && k * bs < n; k++) {
        const from = st.slots[k]! * bs;
        st.bytes.set(data.subarray(from, from + Math.min(bs, n - k * bs)), k * bs);
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
    Atomics.and(I, v.i + VnodeI32.Flags, ~VNODE_DIRTY_HELD);
    const rpcs = Math.max(1, stores.length);
    Atomics.add(I, v.i + VnodeI32.StoresInFlight, rpcs);
    Atomics.store(I, v.i + VnodeI32.StoreOwner, threadToken);
    return { stores, truncPos, fileLength: length };
  }

  /** Sends a batch; `foreground`: a caller waits, so a busy server is retried. */
  async #store(v: Vnode, batch: StoreBatch, foreground: boolean): Promise<void> {
    const I = this.#v.vnodeI32;
    const F = this.#v.vnodeF64;
    const calls: Array<{ offset: number; bytes: Uint8Array; slots: number[] }> =
      batch.stores.length > 0
        ? batch.stores.map((s) => ({ offset: s.firstBlock * this.#blockSize, bytes: s.bytes, slots: s.slots }))
        : [{ offset: 0, bytes: new Uint8Array(0), slots: [] }];
    let done = 0;
    try {
      for (const call of calls) {
        const options: { truncPos?: number; fileLength?: number } = {};
        if (done === 0 && batch.truncPos !== Infinity) options.truncPos = batch.truncPos;
        if (done === calls.length - 1) options.fileLength = batch.fileLength;
        this.#v.count('storeRpcs');
        this.#trace.store(v.fid, call.offset, call.bytes.length);
        const result = await this.#rpc(() => this.#server.storeData(v.fid, call.offset, call.bytes, options as StoreOptions), foreground);
        this.#v.count('storeBytes', call.bytes.length);
        await v.lock.writeAsync();
        try {
          const before = F[v.f + VnodeF64.BufDataVersionLow]!;
          this.#applyServerVersion(v, result.dataVersion, result.length);
          Atomics.sub(I, v.i + VnodeI32.StoresInFlight, 1);
          if (F[v.f + VnodeF64.BufDataVersionLow] === before) this.#v.count('buffersKeptValid', Atomics.load(I, v.i + VnodeI32.Cached));
          else this.#v.count('buffersInvalidated');
          F[v.f + VnodeF64.ServerLength] = result.length;
          if (done === 0) F[v.f + VnodeF64.InFlightTruncPos] = Infinity; // the first call carried it
          for (const slot of call.slots) Atomics.and(this.#v.headers, slot * HEADER_I32 + HeaderI32.State, ~BufferState.Storing);
          done++;
        } finally {
          v.lock.release();
        }
        for (const slot of call.slots) this.#buffers.releaseDisowned(slot); // the dirty holds
      }
      this.#vnodes.releaseDisowned(v.slot); // the batch's dirty hold on the vnode
    } catch (e) {
      // Nothing written is lost: what was not stored becomes dirty again.
      await v.lock.writeAsync();
      try {
        for (const call of calls.slice(done)) {
          for (const slot of call.slots) this.#returnToDirty(v, slot);
        }
        Atomics.sub(I, v.i + VnodeI32.StoresInFlight, calls.length - done);
        this.#returnTruncation(v);
        this.#returnVnodeHold(v);
      } finally {
        v.lock.release();
      }
      throw e;
    } finally {
      Atomics.notify(I, v.i + VnodeI32.StoresInFlight);
    }
  }

  /** Flushes every vnode with unstored changes; false if there was none. */
  async #flushAllDirty(): Promise<boolean> {
    const I = this.#v.vnodeI32;
    const fids: Fid[] = [];
    const vnodeCount = I.length / VNODE_I32;
    for (let slot = 0; slot < vnodeCount; slot++) {
      if ((Atomics.load(I, slot * VNODE_I32 + VnodeI32.Flags) & VNODE_DIRTY_HELD) === 0) continue;
      const fid = this.#vnodes.fidAt(slot);
      if (fid !== undefined) fids.push(fid);
    }
    for (const fid of fids) await this.#withVnode(fid, (v) => this.#flushVnode(v));
    return fids.length > 0;
  }

  /**
   * An RPC. `foreground`: a caller waits, so a busy server is retried within the
   * deadline; background work has no such permission and fails at once.
   */
  #rpc<T>(rpc: () => Promise<T>, foreground: boolean): Promise<T> {
    const policy = foreground && this.#busyRetry.deadlineMs > 0 ? this.#busyRetry : undefined;
    return withBusyRetry(rpc, policy, () => this.#v.count('busyRetries'));
  }

  // ---- access -------------------------------------------------------------------------

  /**
   * Under v's lock: who `caller` acts as in v's cell now (the user its token names, until
   * the token expires), and the rights cached for that, if still good. `breakSeq` is read
   * here, before any RPC: a callback break while the server answers makes the answer stale.
   */
  #cachedRights(v: Vnode, caller: Caller, now: number): CachedRights {
    const token = this.#pags!.token(caller.pag, v.fid.cell, now);
    const userId = token?.userId ?? ANONYMOUS;
    const validUntil = token?.expiresAt ?? Infinity;
    const breakSeq = Atomics.load(this.#v.vnodeI32, v.i + VnodeI32.BreakSeq);
    return { rights: this.#access.lookup(v.slot, caller.pag, userId, breakSeq, now), userId, validUntil, breakSeq };
  }

  /** Under v's lock: whether cached rights let `caller` do `right` now (no RPC). */
  #cachedRightsAllow(v: Vnode, caller: Caller, right: number): boolean {
    const { rights } = this.#cachedRights(v, caller, Date.now());
    if (rights === undefined || (rights & right) === 0) return false;
    this.#v.count('accessHits');
    return true;
  }

  /**
   * Lets the operation go on if `caller` may do `right` on v: from the access cache
   * while it is good, else by asking the server as the caller's user. A denial is an
   * ERR_CMKIT_ACCESS_DENIED error and the operation changes nothing.
   */
  async #authorize(v: Vnode, caller: Caller | undefined, right: number): Promise<void> {
    if (caller === undefined) return;
    await v.lock.readAsync();
    let cached: CachedRights;
    try {
      cached = this.#cachedRights(v, caller, Date.now());
    } finally {
      v.lock.release();
    }
    const { userId, validUntil, breakSeq } = cached;
    let rights = cached.rights;
    if (rights !== undefined) {
      this.#v.count('accessHits');
    } else {
      this.#v.count('accessRpcs');
      const reply = await this.#rpc(() => this.#server.fetchStatus(v.fid, userId === ANONYMOUS ? undefined : { userId }), true);
      const granted = reply.rights ?? Rights.All;
      rights = granted;
      await v.lock.writeAsync();
      try {
        this.#access.store(v.slot, caller.pag, userId, granted, breakSeq, validUntil);
      } finally {
        v.lock.release();
      }
    }
    if ((rights & right) === 0) {
      const what = right === Rights.Write ? 'write' : 'read';
      const who = userId === ANONYMOUS ? 'anonymous (no usable token)' : `user ${userId}`;
      throw Object.assign(new Error(`PAG ${caller.pag}, as ${who}, may not ${what} ${v.fid}`), { code: 'ERR_CMKIT_ACCESS_DENIED' });
    }
  }

  #checkCaller(caller: Caller | undefined): void {
    if (caller === undefined) return;
    checkObject(caller, 'caller');
    checkUint32(caller.pag, 'caller.pag');
    if (this.#pags === undefined) throw invalidArgType('caller', 'undefined: this cache was created without options.pags', caller);
  }

  #checkOpen(what: string): void {
    if (this.#closed) throw typeError('ERR_CMKIT_CLOSED', `CacheManager.${what}: the cache manager is closed`);
  }
}

/** What #cachedRights found: who the caller acts as, and its rights if cached and good. */
interface CachedRights {
  readonly rights: number | undefined;
  readonly userId: number;
  readonly validUntil: number;
  readonly breakSeq: number;
}

interface PendingStore {
  readonly firstBlock: number;
  readonly slots: number[];
  bytes: Uint8Array;
}

interface StoreBatch {
  readonly stores: PendingStore[];
  readonly truncPos: number;
  readonly fileLength: number;
}

function checkFidArg(fid: unknown): void {
  if (!(fid instanceof Fid)) throw invalidArgType('fid', 'an instance of Fid', fid);
}

function identityIs(words: Int32Array, at: number, a: number, b: number, c: number, d: number): boolean {
  return (
    Atomics.load(words, at + 3) === (d | 0) &&
    Atomics.load(words, at + 2) === (c | 0) &&
    Atomics.load(words, at + 1) === (b | 0) &&
    Atomics.load(words, at) === (a | 0)
  );
}

/** Writes an identity word by word, the first word last: a reader checks it first-last. */
function storeIdentity(words: Int32Array, at: number, a: number, b: number, c: number, d: number): void {
  Atomics.store(words, at, -1);
  Atomics.store(words, at + 3, d | 0);
  Atomics.store(words, at + 2, c | 0);
  Atomics.store(words, at + 1, b | 0);
  Atomics.store(words, at, a | 0);
}

function blockOf(headers: Int32Array, h: number): number {
  return (headers[h + HeaderI32.Identity + 3]! >>> 0) * 2 ** 32 + (headers[h + HeaderI32.Identity + 2]! >>> 0);
}
