import { invalidArgType, typeError } from '../core/errors.js';
import { Fid } from '../core/fid.js';
import { RefTable, type RefTableDescriptor } from '../core/ref-table.js';
import { checkInteger, checkObject, checkUint32 } from '../core/validate.js';
import type { FileServer, FileStatus } from '../server/file-server.js';
import { RemoteFileServer, ServerChannel } from '../server/server-channel.js';
import { Tracer } from '../trace/tracer.js';
import { PagTable, type PagTableDescriptor } from '../users/pag-table.js';
import { AccessCache } from './access-cache.js';
import { runJob, runJobFor } from './background.js';
import { checkBackgroundJob, type BackgroundJob, type BackgroundRunner } from './background-job.js';
import { evictClean } from './buffers.js';
import type { BusyRetryPolicy } from './busy-retry.js';
import { resolveOptions, type CacheManagerOptions } from './cache-options.js';
import type { CacheContext, Caller } from './context.js';
import { openCacheFile } from './cache-file.js';
import { CacheViews, allocateCacheMemory, type CacheStats, type SharedCacheMemory } from './layout.js';
import { read } from './read.js';
import { recoverCache, type RestoredCache } from './recover.js';
import { startSealCheck } from './seal.js';
import { flushAllDirty, flushVnode, salvageAllDirty, storeRestored } from './store.js';
import { callbackBroken, cachedLength, statVnode, storeError, withVnode } from './vnode-status.js';
import { truncate, write } from './write.js';

export {
  DEFAULT_BLOCK_SIZE,
  DEFAULT_BUSY_DEADLINE_MS,
  DEFAULT_BUSY_DELAY_MS,
  DEFAULT_BUSY_MAX_DELAY_MS,
  DEFAULT_CACHE_SIZE,
  DEFAULT_CHUNK_SIZE,
  DEFAULT_MAX_READAHEAD,
  DEFAULT_MAX_VNODES,
  defaultSalvageDir,
  type CacheManagerOptions,
} from './cache-options.js';
export type { Caller } from './context.js';
export type { RestoredCache } from './recover.js';

/** The smallest page size of the hosts we run on: prefault() touches one byte per page. */
const PAGE_SIZE = 4096;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

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
  readonly salvageDir: string;
}

type Config = Omit<CacheDescriptor, 'kind' | 'vnodeTable' | 'bufferTable' | 'pags'>;

let nextCacheId = 0;

/**
 * A file-system client cache shared by every thread of the process: vnode status and
 * data buffers live in shared memory, found through two RefTables (vnodes by Fid,
 * buffers by vnode and block number) and guarded by one RwLock per vnode.
 *
 * Create it on one thread with a FileServer; other threads attach with `descriptor` and
 * reach the server through that thread. This class is the facade: it checks arguments
 * and runs the lifecycle; the work is in the modules of its phases (context.ts lists
 * them), all on one CacheContext per cache per thread.
 */
export class CacheManager {
  readonly #cache: CacheContext;
  readonly #config: Config;
  readonly #owned: { channel: ServerChannel } | { remote: RemoteFileServer };
  readonly #pagsAttached: boolean;
  readonly #file: { unlock: () => void; restored: RestoredCache } | undefined;

  private constructor(
    server: FileServer,
    vnodes: RefTable,
    buffers: RefTable,
    config: Config,
    owned: { channel: ServerChannel } | { remote: RemoteFileServer },
    pags: { table: PagTable; attached: boolean } | undefined,
    file?: { unlock: () => void; restored: RestoredCache },
  ) {
    const views = new CacheViews(config.memory);
    this.#file = file;
    this.#config = config;
    this.#owned = owned;
    this.#pagsAttached = pags?.attached ?? false;
    this.#cache = {
      server,
      vnodes,
      buffers,
      v: views,
      blockSize: config.blockSize,
      chunkBlocks: config.chunkSize / config.blockSize,
      bufferCount: views.versions.length,
      prefetch: config.prefetch,
      maxReadahead: config.maxReadahead,
      storeBehind: config.storeBehind,
      busyRetry: config.busyRetry,
      access: new AccessCache(config.access),
      pags: pags?.table,
      trace: new Tracer(),
      salvageDir: config.salvageDir,
      zeros: new Uint8Array(config.blockSize),
      readahead: new Map(),
      writeEnds: new Map(),
      syncLocks: new Map(),
      background: new Set(),
      runLocal: (v, job) => runJob(this.#cache, v, job),
      runner: undefined,
      closed: false,
    };
  }

  /** A new cache in front of `server`, on this thread. */
  static create(server: FileServer, options: CacheManagerOptions = {}): CacheManager {
    checkObject(server, 'server');
    const o = resolveOptions(options);
    const opened = o.cacheFile === undefined ? undefined : openCacheFile(o.cacheFile, { blockSize: o.blockSize, buffers: o.buffers, maxVnodes: o.maxVnodes });
    const memory = opened?.memory ?? allocateCacheMemory(o.maxVnodes, o.buffers, o.blockSize);
    const vnodeTable = new RefTable({ capacity: o.maxVnodes });
    const bufferTable = new RefTable({ capacity: o.buffers });
    const restored = opened === undefined ? undefined : opened.existed
      ? recoverCache(new CacheViews(memory), vnodeTable, bufferTable, o.blockSize)
      : { vnodes: 0, cleanBuffers: 0, dirtyBuffers: 0, dirtyFids: [], dropped: 0 };
    const serverChannel = `cmkit.cache.${process.pid}.${nextCacheId++}.${Math.random().toString(36).slice(2)}`;
    const channel = new ServerChannel(serverChannel, server);
    const cm = new CacheManager(
      server,
      vnodeTable,
      bufferTable,
      {
        memory,
        blockSize: o.blockSize,
        chunkSize: o.chunkSize,
        prefetch: o.prefetch,
        maxReadahead: o.maxReadahead,
        storeBehind: o.storeBehind,
        busyRetry: o.busyRetry,
        serverChannel,
        access: AccessCache.allocate(o.maxVnodes),
        salvageDir: o.salvageDir,
      },
      { channel },
      o.pags === undefined ? undefined : { table: o.pags, attached: false },
      opened === undefined ? undefined : { unlock: opened.unlock, restored: restored! },
    );
    server.onCallbackBreak((fid) => callbackBroken(cm.#cache, fid));
    if (restored !== undefined && restored.cleanBuffers > 0) startSealCheck(cm.#cache, opened!.willNeed);
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
    const c = this.#config;
    return {
      kind: 'cmkit.CacheManager',
      vnodeTable: this.#cache.vnodes.descriptor,
      bufferTable: this.#cache.buffers.descriptor,
      memory: c.memory,
      blockSize: c.blockSize,
      chunkSize: c.chunkSize,
      prefetch: c.prefetch,
      maxReadahead: c.maxReadahead,
      storeBehind: c.storeBehind,
      busyRetry: c.busyRetry,
      serverChannel: c.serverChannel,
      access: c.access,
      pags: this.#cache.pags?.descriptor,
      salvageDir: c.salvageDir,
    };
  }

  /** This thread's trace points: `cm.trace.enable(['fetch', 'store'])`. All off by default. */
  get trace(): Tracer {
    return this.#cache.trace;
  }

  get blockSize(): number {
    return this.#cache.blockSize;
  }

  /**
   * The one deliberate hatch for tests: the shared views and tables behind this cache.
   * Not part of the API; anything written through it can corrupt the cache.
   */
  unsafeExposeInternals(): { views: CacheViews; vnodes: RefTable; buffers: RefTable } {
    return { views: this.#cache.v, vnodes: this.#cache.vnodes, buffers: this.#cache.buffers };
  }

  /**
   * What the cache found in its cache file when it opened it (recover.ts); undefined
   * for a cache in memory, or on a thread that attached.
   */
  get restored(): RestoredCache | undefined {
    return this.#file?.restored;
  }

  /**
   * Stores the unstored writes found in the cache file (restored.dirtyFids), each after
   * one status of its file; a store refused for good is salvaged, as any store is. Call
   * it before serving anything: a mount does, before it mounts. Resolves to how many of
   * the files are now clean.
   */
  async storeRestored(): Promise<number> {
    this.#checkOpen('storeRestored');
    return storeRestored(this.#cache, this.#file?.restored.dirtyFids ?? []);
  }

  /** Counters shared by every thread of this cache. */
  stats(): CacheStats {
    return this.#cache.v.readStats();
  }

  /** Reads up to `length` bytes at `offset`; shorter at end of file. */
  async read(fid: Fid, offset: number, length: number, caller?: Caller): Promise<Uint8Array> {
    this.#checkOpen('read');
    checkFidArg(fid);
    checkInteger(offset, 'offset', 0, MAX_SAFE);
    checkInteger(length, 'length', 0, MAX_SAFE - offset);
    this.#checkCaller(caller);
    return read(this.#cache, fid, offset, length, undefined, caller);
  }

  /** Reads into `into` from `offset`; resolves to the number of bytes read. */
  async readInto(fid: Fid, offset: number, into: Uint8Array, caller?: Caller): Promise<number> {
    this.#checkOpen('readInto');
    checkFidArg(fid);
    checkInteger(offset, 'offset', 0, MAX_SAFE);
    if (!(into instanceof Uint8Array)) throw invalidArgType('into', 'an instance of Uint8Array', into);
    checkInteger(into.length, 'into.length', 0, MAX_SAFE - offset);
    this.#checkCaller(caller);
    return (await read(this.#cache, fid, offset, into.length, into, caller)).length;
  }

  /** Writes `data` at `offset` into the cache; flush() stores it. */
  async write(fid: Fid, offset: number, data: Uint8Array, caller?: Caller): Promise<void> {
    this.#checkOpen('write');
    checkFidArg(fid);
    checkInteger(offset, 'offset', 0, MAX_SAFE);
    if (!(data instanceof Uint8Array)) throw invalidArgType('data', 'an instance of Uint8Array', data);
    checkInteger(data.length, 'data.length', 0, MAX_SAFE - offset);
    this.#checkCaller(caller);
    this.#cache.trace.write(fid, offset, data.length);
    await withVnode(this.#cache, fid, (v) => write(this.#cache, v, offset, data, caller));
  }

  /** Sets the file's length. Bytes past a shrink are never fetched again; flush() stores it. */
  async truncate(fid: Fid, length: number, caller?: Caller): Promise<void> {
    this.#checkOpen('truncate');
    checkFidArg(fid);
    checkInteger(length, 'length', 0, MAX_SAFE);
    this.#checkCaller(caller);
    await withVnode(this.#cache, fid, (v) => truncate(this.#cache, v, length, caller));
  }

  /** Stores the file's dirty data and pending truncation; resolves once the server has it. */
  async flush(fid: Fid): Promise<void> {
    this.#checkOpen('flush');
    checkFidArg(fid);
    await withVnode(this.#cache, fid, (v) => flushVnode(this.#cache, v));
  }

  /** Flushes every file with dirty data. */
  async flushAll(): Promise<void> {
    this.#checkOpen('flushAll');
    await flushAllDirty(this.#cache);
  }

  /** The file's status as this client sees it (length includes unstored writes). */
  async stat(fid: Fid): Promise<FileStatus> {
    this.#checkOpen('stat');
    checkFidArg(fid);
    return withVnode(this.#cache, fid, (v) => statVnode(this.#cache, v));
  }

  /**
   * Touches each page of the buffers' memory once (an atomic compare-exchange of 0 for 0,
   * which changes no byte), so that fetches never pay the kernel's first-touch page
   * faults: about 0.75 ms per MiB here, more than the copy itself. Safe while the cache
   * is in use. A long-lived host (a mount) calls it once at start. A cache in a file is
   * not touched: its pages are the file's, read in as they are used.
   */
  prefault(): void {
    this.#checkOpen('prefault');
    if (this.#file !== undefined || this.#cache.v.seals !== undefined) return;
    const data = this.#cache.v.data;
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
    return cachedLength(this.#cache, fid);
  }

  /**
   * The file's last store refused for good (store-error.ts): a cache-wide sequence
   * number (0: none, or the cache no longer holds the file) and its errno. Its data is
   * in the salvage directory. A caller that remembers the number it saw reports each
   * failure once, as Linux reports a writeback error to each file descriptor.
   */
  storeError(fid: Fid): { seq: number; errno: number } {
    this.#checkOpen('storeError');
    checkFidArg(fid);
    return storeError(this.#cache, fid);
  }

  /** Drops the file's clean buffers from the cache; resolves to how many were dropped. */
  async evict(fid: Fid): Promise<number> {
    this.#checkOpen('evict');
    checkFidArg(fid);
    return withVnode(this.#cache, fid, async (v) => {
      await v.lock.writeAsync();
      try {
        return evictClean(this.#cache, v);
      } finally {
        v.lock.release();
      }
    });
  }

  /**
   * Sends this thread's background jobs to `runner` instead of running them here; a pool
   * does this in its workers. undefined restores the default.
   */
  setBackgroundRunner(runner: BackgroundRunner | undefined): void {
    if (runner !== undefined && typeof runner !== 'function') throw invalidArgType('runner', 'a function', runner);
    this.#cache.runner = runner;
  }

  /**
   * Runs a background job made by any thread of this cache. Never rejects: a failure is
   * counted (backgroundFailures, and storeBehindFailures for a store) and its data stays
   * dirty; a prefetch that fails is only a missed chance, the reader fetches on demand.
   */
  async runBackground(job: BackgroundJob): Promise<void> {
    this.#checkOpen('runBackground');
    const { fid } = checkBackgroundJob(job);
    await runJobFor(this.#cache, fid, job);
  }

  /** Resolves once the background jobs this thread started (and any they started) have run. */
  async backgroundSettled(): Promise<void> {
    const background = this.#cache.background;
    while (background.size > 0) await Promise.allSettled([...background]);
  }

  /**
   * Stops trying to store: every file's unstored data is written to the salvage
   * directory and leaves the cache, recorded as a refusal with `errno` (a mount gives up
   * this way at a second signal). Resolves to the number of files salvaged.
   */
  async salvageDirty(errno: number, reason: string): Promise<number> {
    this.#checkOpen('salvageDirty');
    checkInteger(errno, 'errno', 1, 4095);
    if (typeof reason !== 'string') throw invalidArgType('reason', 'of type string', reason);
    return salvageAllDirty(this.#cache, errno, reason);
  }

  /**
   * Waits for background fetches, flushes all dirty data, and leaves the cache. On the
   * creating thread it also closes the cache for every thread.
   */
  async close(): Promise<void> {
    const cache = this.#cache;
    if (cache.closed) return;
    await this.backgroundSettled();
    await flushAllDirty(cache);
    cache.closed = true;
    if (this.#pagsAttached) cache.pags!.close();
    if ('channel' in this.#owned) {
      this.#owned.channel.close();
      cache.vnodes.close();
      cache.buffers.close();
      this.#file?.unlock();
    } else {
      this.#owned.remote.close();
      cache.vnodes.detach();
      cache.buffers.detach();
    }
  }

  #checkCaller(caller: Caller | undefined): void {
    if (caller === undefined) return;
    checkObject(caller, 'caller');
    checkUint32(caller.pag, 'caller.pag');
    if (this.#cache.pags === undefined) throw invalidArgType('caller', 'undefined: this cache was created without options.pags', caller);
  }

  #checkOpen(what: string): void {
    if (this.#cache.closed) throw typeError('ERR_CMKIT_CLOSED', `CacheManager.${what}: the cache manager is closed`);
  }
}

function checkFidArg(fid: unknown): void {
  if (!(fid instanceof Fid)) throw invalidArgType('fid', 'an instance of Fid', fid);
}
