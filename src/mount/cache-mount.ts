/**
 * A FUSE mount served from a cmkit cache: the kernel's file operations on the mount
 * become cache reads, writes, truncations and flushes of the files of a
 * DirectoryFileServer, and namespace RPCs (lookup, mkdir, rename...) on it.
 *
 * Threads: the session's native reader threads read the kernel's requests and queue
 * them (see native/fuse/fuse_session.h). Request workers (worker threads attached to the cache)
 * serve the data requests of the file handles routed to them, one worker per handle,
 * round-robin at open; the thread that mounted serves the namespace requests (and, with
 * no workers, everything). Each thread takes its queue when woken and serves each
 * request as an async task, so requests waiting on the server overlap and none blocks
 * an event loop. Every request is answered exactly once, with an errno if its task
 * throws.
 *
 * What the kernel may cache, chosen so it never serves what the cache would not:
 *   - attributes: attrTimeoutS (default 1 s), as NFS's actimeo. Changes made through
 *     the mount are always current (the kernel updates its copy from our replies and its
 *     own writes); a change made outside shows within that time, or at the next open.
 *     Listings answer READDIRPLUS, so `ls -l` costs one round per listing, not per name.
 *   - names: entryTimeoutS (default 1 s). A name created or removed outside the mount
 *     may be unseen for that long; names changed through the mount are always current.
 *   - behind both, the mount's own copy of names, listings and attributes
 *     (./name-cache.ts), kept namesTimeoutS (default 10 s): what a tree walked again asks
 *     is answered without the server. A change made outside shows within that time
 *     (plus the kernel's), or at once where the server breaks a callback for it.
 *   - pages: kept across opens (keep_cache) while the file is unchanged. Each open asks
 *     the server whether it changed (close-to-open, as NFS); a change is a callback
 *     break, and the mount drops the kernel's pages and size of the file before it
 *     answers the open. A break while the file is open drops them as soon as the
 *     notifier thread gets to it. With caching off, pages are dropped at every open.
 *   - no writeback cache: every write reaches the cache before write(2) returns.
 * A write is acknowledged once the cache holds it; close(2) and fsync(2) store the
 * file's dirty data and report a store that failed.
 *
 * As a local file system: open honours O_TRUNC (a pending truncation in the cache, so an
 * overwrite fetches nothing); creates, mkdirs, mknods and symlinks are owned by the
 * requesting uid/gid with the mode the kernel sends (already masked by the caller's
 * umask); chown and chmod are checked by the kernel (default_permissions) and applied;
 * names are bytes; hard links keep one node id; sizes past what the backing file system
 * holds fail with EFBIG at the call. An open file stays readable, writable and stat-able
 * through its handles when it is unlinked or replaced (the server holds it open from the
 * first open to the last release), and a name that now leads to another file (replaced,
 * or a new file with a freed inode number) gets a new node id. No name is reserved: stats go over a control
 * channel (./control.ts).
 */

import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';

import { CacheManager, type CacheManagerOptions } from '../cache/cache-manager.js';
import type { CacheStats } from '../cache/layout.js';
import type { Fid } from '../core/fid.js';
import { invalidArgType, outOfRange } from '../core/errors.js';
import { checkInteger, checkObject } from '../core/validate.js';
import type { DirectoryFileServer, DirectoryServerCounters, NodeAttr, Requester } from '../server/directory-file-server.js';
import { S_IFDIR, S_IFMT } from '../server/backing-dir.js';
import type { FileServer } from '../server/file-server.js';
import { loadFuse, type FuseAttr, type FuseOps, type FuseRequest, type FuseSessionHandle, type FuseSetAttrBits } from './fuse.js';
import { DataRequests } from './data-requests.js';
import { errno, errnoError, errnoOf } from './errno.js';
import { NameCache } from './name-cache.js';
import { NodeTable, ROOT_INO } from './node-table.js';
import { RequestTasks } from './request-tasks.js';
import type { RequestWorkerData, RequestWorkerMessage, RequestWorkerReply } from './request-worker.js';

export interface CacheMountOptions {
  /**
   * Serve file data from a cmkit cache. false passes every read, write and truncation
   * to the server as it comes: the mount a cache is measured against. @default true
   */
  readonly caching?: boolean;
  /**
   * Options of the cache the mount creates; unset ones take the mount's defaults
   * (blockSize 64 KiB, chunkSize 1 MiB, maxReadahead 16 MiB, cacheSize 256 MiB), then the cache's.
   */
  readonly cache?: CacheManagerOptions;
  /** Seconds the kernel may keep a name's answer. @default 1 */
  readonly entryTimeoutS?: number;
  /** Seconds the kernel may keep a node's attributes. @default 1 */
  readonly attrTimeoutS?: number;
  /**
   * Seconds the mount keeps the names, listings and attributes it asked the server for
   * (./name-cache.ts); 0 asks the server every time the kernel asks. @default 10
   */
  readonly namesTimeoutS?: number;
  /**
   * Request workers serving reads, writes, flushes and fsyncs (caching on only); 0 serves
   * everything on the mounting thread. @default 2
   */
  readonly workers?: number;
  /**
   * Cached reads answered on the FUSE session's reader threads, where the kernel's
   * request is read (native/core/read_hit.h), with no JS wakeup; false sends every read
   * to a JS thread, as before (the benchmark's baseline). @default true
   */
  readonly readerHits?: boolean;
}

export interface MountStats {
  /** Kernel requests served, by operation. */
  readonly requests: Record<string, number>;
  /** Requests answered with an error. */
  readonly errors: number;
  readonly cache: CacheStats | undefined;
  readonly server: DirectoryServerCounters;
  /** Nodes the kernel holds. */
  readonly nodes: number;
  readonly openFiles: number;
  /** Request workers serving now, and those that ended unasked (their handles moved to the mounting thread). */
  readonly requestWorkers: number;
  /**
   * The FUSE session's own: wakeups of JS threads, and READs its reader threads answered
   * from the cache themselves (not in cache.hits, which counts the JS path's).
   */
  readonly session: { readonly wakes: number; readonly readerHits: number };
  readonly requestWorkersLost: number;
}

const FIRST_INO = 2;
/**
 * Bigger than the cache's own defaults: a mount fronts a slow server and the kernel asks
 * in 128 KiB reads, so each RPC carries 1 MiB (as NFS's rsize) and readahead runs 16 MiB
 * ahead of a sequential reader.
 */
const DEFAULT_MOUNT_CACHE: CacheManagerOptions = {
  blockSize: 64 * 1024,
  chunkSize: 1024 * 1024,
  maxReadahead: 16 * 1024 * 1024,
  cacheSize: 256 * 1024 * 1024,
};

/**
 * Before the mount serves anything: the unstored writes a cache file held (a mount that
 * was killed) go to the server. Their files are found by Fid first, since this server
 * has not seen them yet. One that cannot be stored is salvaged by the store-error rules.
 */
async function storeRestored(server: DirectoryFileServer, cache: CacheManager | undefined): Promise<void> {
  const restored = cache?.restored;
  if (restored === undefined || restored.dirtyFids.length === 0) return;
  await server.locate(restored.dirtyFids);
  await cache!.storeRestored();
}

const DEFAULT_WORKERS = 2;
/** sshfs keeps its directory cache 20 s, NFS its directory attributes 30 s; see ./name-cache.ts. */
const DEFAULT_NAMES_TIMEOUT_S = 10;
const MAX_WORKERS = 64;

const RENAME_NOREPLACE = 1;
const RENAME_EXCHANGE = 2;
const O_ACCMODE = 3;
const O_TRUNC = 0o1000;
/** Holds an open tries while unlinks and renames through the mount overlap it. */
const MAX_OPEN_ATTEMPTS = 8;
/** The smallest READDIRPLUS entry (header 152 bytes, a name padded to 8): bounds how many fit a reply. */
const MIN_DIRENTPLUS = 160;

interface OpenFile {
  readonly ino: number;
  readonly fid: Fid;
}

/** An open directory: its entries as listed at opendir ("." and ".." first). */
interface OpenDir {
  readonly names: string[];
  readonly attrs: Array<NodeAttr | undefined>;
}

export class CacheMount {
  readonly #server: DirectoryFileServer;
  readonly #connection: FileServer;
  readonly #cache: CacheManager | undefined;
  readonly #session: FuseSessionHandle;
  readonly #ops: FuseOps;
  readonly #setAttrBits: FuseSetAttrBits;
  readonly #opNames: string[];
  readonly #entryTimeoutS: number;
  readonly #attrTimeoutS: number;
  readonly #maxFileSize: number;
  readonly #nodes = new NodeTable(FIRST_INO);
  /** Names, listings and attributes the server gave, for namesTimeoutS (main thread only). */
  readonly #names: NameCache;
  readonly #fidByIno = new Map<number, Fid>();
  readonly #inoByFid = new Map<string, number>();
  readonly #files = new Map<number, OpenFile>();
  /** Nodes removed while the kernel held them: the server holds their files until FORGET. */
  readonly #keptForKernel = new Map<number, Fid>();
  /** Those holds being taken: an open that misses meanwhile waits for them and looks again. */
  readonly #keeping = new Set<Promise<void>>();
  /** Unlinks and renames in flight, and how many have started. */
  readonly #removals = new Set<Promise<void>>();
  #removalsStarted = 0;
  /** Open handles per file (fid string): the server holds each such file open for us. */
  readonly #opens = new Map<string, number>();
  readonly #dirs = new Map<number, OpenDir>();
  /** ino -> ticket of the kernel invalidation a callback break asked for. */
  readonly #invalidating = new Map<number, number>();
  readonly #invalidationWaiters: Array<{ ticket: number; resolve: () => void }> = [];
  /** Requests served by every thread, by op number; the last word counts errors. */
  readonly #counters: Int32Array;
  readonly #data: DataRequests;
  readonly #tasks: RequestTasks;
  readonly #workers: Array<{ worker: Worker; consumer: number }> = [];
  readonly #ended: Promise<void>;
  #resolveEnded!: () => void;
  #nextFh = 1;
  #nextWorker = 0;
  #workersLost = 0;
  #unmounting: Promise<void> | undefined;

  /** Mounts `server`'s tree at `mountpoint` (an existing empty directory); resolves once it serves. */
  static async mount(server: DirectoryFileServer, mountpoint: string, options: CacheMountOptions = {}): Promise<CacheMount> {
    if (typeof mountpoint !== 'string') throw invalidArgType('mountpoint', 'of type string', mountpoint);
    checkObject(options, 'options');
    const entryTimeoutS = checkTimeout(options.entryTimeoutS, 'options.entryTimeoutS');
    const attrTimeoutS = checkTimeout(options.attrTimeoutS, 'options.attrTimeoutS');
    const namesTimeoutS = checkTimeout(options.namesTimeoutS, 'options.namesTimeoutS', DEFAULT_NAMES_TIMEOUT_S);
    if (options.caching !== undefined && typeof options.caching !== 'boolean') {
      throw invalidArgType('options.caching', 'of type boolean', options.caching);
    }
    const workers = options.workers ?? DEFAULT_WORKERS;
    checkInteger(workers, 'options.workers', 0, MAX_WORKERS);
    const caching = options.caching ?? true;
    if (options.readerHits !== undefined && typeof options.readerHits !== 'boolean') {
      throw invalidArgType('options.readerHits', 'of type boolean', options.readerHits);
    }
    const readerHits = options.readerHits ?? true;
    const maxFileSize = await server.maxFileSize();
    const connection = server.connect();
    const cache = caching ? CacheManager.create(connection, { ...DEFAULT_MOUNT_CACHE, ...options.cache }) : undefined;
    try {
      await storeRestored(server, cache);
    } catch (e) {
      await cache?.close().catch(() => {});
      throw e;
    }
    const m = new CacheMount(server, mountpoint, connection, cache, { entryTimeoutS, attrTimeoutS, namesTimeoutS, maxFileSize, readerHits });
    // A mount lives long: pay the cache memory's page faults now, not in the first reads.
    m.#cache?.prefault();
    if (caching) {
      try {
        for (let i = 0; i < workers; i++) m.#workers.push(await m.#startWorker());
      } catch (e) {
        await m.unmount().catch(() => {});
        throw e;
      }
    }
    return m;
  }

  private constructor(
    server: DirectoryFileServer,
    mountpoint: string,
    connection: FileServer,
    cache: CacheManager | undefined,
    limits: { entryTimeoutS: number; attrTimeoutS: number; namesTimeoutS: number; maxFileSize: number; readerHits: boolean },
  ) {
    const fuse = loadFuse();
    this.#counters = new Int32Array(new SharedArrayBuffer(4 * (Object.keys(fuse.ops).length + 1)));
    this.#server = server;
    this.#ops = fuse.ops;
    this.#setAttrBits = fuse.setAttr;
    this.#opNames = [];
    for (const [name, op] of Object.entries(fuse.ops)) this.#opNames[op] = name;
    this.#entryTimeoutS = limits.entryTimeoutS;
    this.#names = new NameCache(limits.namesTimeoutS * 1000);
    this.#attrTimeoutS = limits.attrTimeoutS;
    this.#maxFileSize = limits.maxFileSize;
    this.#connection = connection;
    this.#cache = cache;
    this.#ended = new Promise((resolve) => (this.#resolveEnded = resolve));
    const options = ['fsname=cmkit', 'subtype=cmkit', 'default_permissions'];
    if (process.getuid?.() === 0) options.push('allow_other');
    this.#session = new fuse.FuseSession(mountpoint, options, () => this.#drain());
    if (cache !== undefined && limits.readerHits) {
      // Cached reads are served on the session's own reader threads (no JS wakeup).
      const { views, vnodes, buffers } = cache.unsafeExposeInternals();
      this.#session.serveHits(vnodes.descriptor.id, buffers.descriptor.id, views.vnodeI32, views.vnodeF64, views.headers, views.versions, views.data, cache.blockSize);
    }
    this.#data = new DataRequests(this.#session, this.#cache, this.#cache === undefined ? this.#connection : undefined, this.#maxFileSize);
    this.#tasks = new RequestTasks(this.#session, this.#counters);
    // The server tells us a file changed: the kernel's pages of it are stale now.
    this.#connection.onCallbackBreak((fid) => {
      this.#names.fileChanged(fid);
      const ino = this.#inoByFid.get(fid.toString());
      if (ino !== undefined) this.#invalidating.set(ino, this.#session.invalidate(ino));
    });
  }

  /** @internal The request workers' threads (tests end one to see the mount carry on). */
  get requestWorkerThreads(): readonly Worker[] {
    return this.#workers.map((w) => w.worker);
  }

  /** The cache serving the mount (undefined with caching off). */
  get cache(): CacheManager | undefined {
    return this.#cache;
  }

  /** Settles when the mount has gone: unmount() ran, or someone unmounted it from outside. */
  get ended(): Promise<void> {
    return this.#ended;
  }

  stats(): MountStats {
    const requests: Record<string, number> = {};
    this.#opNames.forEach((name, op) => {
      const n = Atomics.load(this.#counters, op);
      if (n > 0) requests[name] = n;
    });
    return {
      requests,
      errors: Atomics.load(this.#counters, this.#counters.length - 1),
      cache: this.#cache?.stats(),
      server: { ...this.#server.counters },
      nodes: this.#nodes.size,
      openFiles: this.#files.size,
      requestWorkers: this.#workers.length,
      requestWorkersLost: this.#workersLost,
      session: this.#session.counters(),
    };
  }

  /**
   * Unmounts, then stores every acknowledged write. The kernel's connection ends first, so
   * no write can be acknowledged after the final flush; requests still unanswered get EIO
   * and a process that still has a file open sees ENOTCONN. Rejects if the server refused
   * the final stores (the data then stays in this process's cache).
   */
  unmount(): Promise<void> {
    this.#unmounting ??= (async () => {
      this.#session.stop();
      await Promise.all(this.#workers.map((w) => drainWorker(w.worker)));
      await this.#tasks.settled();
      try {
        if (this.#cache !== undefined) await this.#cache.close();
      } finally {
        this.#resolveEnded();
      }
    })();
    return this.#unmounting;
  }

  #drain(): void {
    for (const r of this.#session.take()) {
      if (r.op === this.#ops.forget) {
        this.#tasks.run(r); // counted only: FORGET wants no answer
        this.#forget(r.ino, r.nlookup!);
      } else {
        this.#tasks.run(r, () => this.#handle(r));
      }
    }
    if (this.#invalidationWaiters.length > 0) {
      const done = this.#session.invalidated();
      for (let i = this.#invalidationWaiters.length - 1; i >= 0; i--) {
        const w = this.#invalidationWaiters[i]!;
        if (w.ticket > done) continue;
        this.#invalidationWaiters.splice(i, 1);
        w.resolve();
      }
    }
    if (!this.#session.alive() && this.#unmounting === undefined) void this.unmount().catch(() => {});
  }

  /** A request worker attached to the cache and the session; resolves once it serves. */
  async #startWorker(): Promise<{ worker: Worker; consumer: number }> {
    const workerData: RequestWorkerData = {
      sessionId: this.#session.sessionId(),
      cache: this.#cache!.descriptor,
      counters: this.#counters,
      maxFileSize: this.#maxFileSize,
    };
    const worker = new Worker(path.join(__dirname, 'request-worker.js'), { workerData });
    const consumer = await new Promise<number>((resolve, reject) => {
      worker.on('message', (m: RequestWorkerReply) => {
        if (typeof m !== 'object') return;
        if ('consumer' in m) resolve(m.consumer);
        // A job the worker's requests caused; runBackground never rejects, but refuses
        // (throws) once the cache has closed.
        else if (this.#unmounting === undefined) void this.#cache!.runBackground(m.job).catch(() => {});
      });
      worker.once('error', reject);
    });
    // A worker that ends unasked has left the session (its env cleanup removes it as a
    // consumer: what it held is answered EIO, later requests of its handles come here).
    worker.once('exit', () => {
      if (this.#unmounting !== undefined) return;
      const i = this.#workers.findIndex((w) => w.worker === worker);
      if (i < 0) return;
      this.#workers.splice(i, 1);
      this.#workersLost++;
    });
    return { worker, consumer };
  }

  #handle(r: FuseRequest): Promise<void> {
    const ops = this.#ops;
    switch (r.op) {
      case ops.lookup:
        return this.#lookup(r);
      case ops.getattr:
        return this.#getattr(r);
      case ops.setattr:
        return this.#setattr(r);
      case ops.opendir:
        return this.#opendir(r);
      case ops.readdir:
        return this.#readdir(r);
      case ops.readdirplus:
        return this.#readdirplus(r);
      case ops.releasedir:
        this.#dirs.delete(r.fh!);
        this.#session.replyError(r.id, 0);
        return Promise.resolve();
      case ops.open:
        return this.#open(r);
      case ops.create:
        return this.#create(r);
      case ops.read:
        return this.#read(r);
      case ops.write:
        return this.#write(r);
      case ops.flush:
      case ops.fsync:
        return this.#flush(r);
      case ops.release:
        return this.#release(r);
      case ops.unlink:
        return this.#unlink(r);
      case ops.rmdir:
        return this.#rmdir(r);
      case ops.mkdir:
        return this.#mkdir(r);
      case ops.rename:
        return this.#rename(r);
      case ops.statfs:
        return this.#statfs(r);
      case ops.mknod:
        return this.#mknod(r);
      case ops.symlink:
        return this.#symlink(r);
      case ops.readlink:
        return this.#readlink(r);
      case ops.link:
        return this.#link(r);
      default:
        return Promise.reject(errnoError(errno.ENOSYS));
    }
  }

  // ---- nodes ---------------------------------------------------------------------------

  #pathOf(ino: number): string {
    const p = this.#nodes.path(ino);
    if (p === undefined) throw errnoError(errno.ENOENT);
    return p;
  }

  #childPath(parent: number, name: string): string {
    const p = this.#nodes.childPath(parent, name);
    if (p === undefined) throw errnoError(errno.ENOENT);
    return p;
  }

  #fidOf(ino: number): Fid {
    const fid = this.#fidByIno.get(ino);
    if (fid === undefined) throw errnoError(errno.EISDIR);
    return fid;
  }

  /** Answers a lookup-like request: the node gets an id the kernel now holds (a file's other links share it). */
  #entry(parent: number, name: string, attr: NodeAttr): { ino: number; attr: FuseAttr } {
    // A name that now leads to another file (replaced, or a new file that got a freed
    // inode number) is a new node: the kernel's inode for the old one stays the old file.
    const had = this.#nodes.child(parent, name);
    if (had !== undefined && this.#fidByIno.get(had)?.toString() !== attr.fid?.toString()) this.#nodes.unlinked(parent, name);
    const sameAs = attr.fid !== undefined ? this.#inoByFid.get(attr.fid.toString()) : undefined;
    const ino = this.#nodes.remember(parent, name, sameAs);
    if (attr.fid !== undefined) {
      this.#fidByIno.set(ino, attr.fid);
      this.#inoByFid.set(attr.fid.toString(), ino);
    }
    return { ino, attr: this.#fuseAttr(ino, attr) };
  }

  #forget(ino: number, n: number): void {
    if (!this.#nodes.forget(ino, n)) return;
    const kept = this.#keptForKernel.get(ino);
    if (kept !== undefined) {
      this.#keptForKernel.delete(ino);
      void this.#server.release(kept);
    }
    const fid = this.#fidByIno.get(ino);
    if (fid === undefined) return;
    this.#fidByIno.delete(ino);
    if (this.#inoByFid.get(fid.toString()) === ino) this.#inoByFid.delete(fid.toString());
  }

  #fuseAttr(ino: number, a: NodeAttr): FuseAttr {
    // The cache's length includes writes the server has not seen yet.
    const size = a.fid !== undefined ? (this.#cache?.cachedLength(a.fid) ?? a.size) : a.size;
    const blocks = a.fid !== undefined ? Math.max(a.blocks, Math.ceil(size / 512)) : a.blocks;
    return [ino, a.mode, a.nlink, a.uid, a.gid, a.rdev, size, blocks, a.atime.sec, a.atime.nsec, a.mtime.sec, a.mtime.nsec, a.ctime.sec, a.ctime.nsec];
  }

  #replyEntry(r: FuseRequest, parent: number, name: string, attr: NodeAttr): void {
    const e = this.#entry(parent, name, attr);
    this.#session.replyEntry(r.id, e.attr, this.#entryTimeoutS, this.#attrTimeoutS);
  }

  // ---- operations ----------------------------------------------------------------------

  async #lookup(r: FuseRequest): Promise<void> {
    this.#replyEntry(r, r.ino, r.name!, await this.#attrAt(this.#childPath(r.ino, r.name!)));
  }

  /**
   * The server's getattr, answered from the name cache while it holds the path; a file
   * with a handle open is always asked (writes the server has not seen move its times).
   */
  async #attrAt(path: string): Promise<NodeAttr> {
    const kept = this.#names.attr(path);
    if (kept !== undefined && (kept.fid === undefined || !this.#opens.has(kept.fid.toString()))) return kept;
    const generation = this.#names.generation;
    const attr = await this.#server.getattr(path);
    this.#names.keepAttr(path, attr, generation);
    return attr;
  }

  async #getattr(r: FuseRequest): Promise<void> {
    this.#session.replyAttr(r.id, this.#fuseAttr(r.ino, await this.#attrOf(r.ino)), this.#attrTimeoutS);
  }

  /**
   * A node's attributes: an open file's from the file itself (the server holds it open,
   * so an unlinked one stays stat-able as on a local file system), others at their path.
   */
  #attrOf(ino: number): Promise<NodeAttr> {
    const fid = this.#openFid(ino);
    return fid !== undefined ? this.#server.fileAttr(fid) : this.#attrAt(this.#pathOf(ino));
  }

  /** The Fid of `ino` if it is a file with a handle open. */
  #openFid(ino: number): Fid | undefined {
    const fid = this.#fidByIno.get(ino);
    return fid !== undefined && this.#opens.has(fid.toString()) ? fid : undefined;
  }

  async #setattr(r: FuseRequest): Promise<void> {
    const toSet = r.toSet!;
    const setAttr = this.#setAttrBits;
    let resized = false;
    if ((toSet & setAttr.size) !== 0) {
      if (r.size! > this.#maxFileSize) throw errnoError(errno.EFBIG);
      const fid = this.#fidOf(r.ino);
      resized = (this.#cache?.cachedLength(fid) ?? (await this.#attrOf(r.ino)).size) !== r.size;
      await this.#truncate(fid, r.size!);
      // truncate(2) and ftruncate(2) reach the server before they return, as NFS's
      // SETATTR does: a file truncated and never written again would otherwise keep its
      // old length there until the mount ends. (O_TRUNC stays a pending truncation, sent
      // with the writes that follow it.)
      await this.#cache?.flush(fid);
      this.#attrsChanged(r.ino);
    }
    const time = (now: number, set: number, t: [number, number]): { sec: number; nsec: number } | 'now' | undefined =>
      (toSet & now) !== 0 ? 'now' : (toSet & set) !== 0 ? { sec: t[0], nsec: t[1] } : undefined;
    const changes = {
      mode: (toSet & setAttr.mode) !== 0 ? r.mode! & 0o7777 : undefined,
      uid: (toSet & setAttr.uid) !== 0 ? r.uid! : undefined,
      gid: (toSet & setAttr.gid) !== 0 ? r.gid! : undefined,
      atime: time(setAttr.atimeNow, setAttr.atime, r.atime!),
      // truncate(2) sends the size alone: a file system moves mtime (and ctime) itself
      // when the size changes, as ext4 does.
      mtime: time(setAttr.mtimeNow, setAttr.mtime, r.mtime!) ?? (resized ? 'now' : undefined),
    };
    const any = Object.values(changes).some((v) => v !== undefined);
    const open = this.#openFid(r.ino);
    const attr = !any
      ? await this.#attrOf(r.ino)
      : open !== undefined
        ? await this.#server.setFileAttr(open, changes)
        : await this.#server.setattr(this.#pathOf(r.ino), changes);
    if (any) this.#attrsChanged(r.ino);
    this.#session.replyAttr(r.id, this.#fuseAttr(r.ino, attr), this.#attrTimeoutS);
  }

  async #truncate(fid: Fid, length: number): Promise<void> {
    if (this.#cache !== undefined) await this.#cache.truncate(fid, length);
    else await this.#connection.storeData(fid, 0, new Uint8Array(0), { truncPos: length, fileLength: length });
  }

  async #opendir(r: FuseRequest): Promise<void> {
    const at = this.#pathOf(r.ino);
    let listing = this.#names.listing(at);
    if (listing === undefined) {
      const generation = this.#names.generation;
      listing = await this.#server.readdir(at);
      this.#names.keepListing(at, listing, generation);
    }
    const fh = this.#nextFh++;
    this.#dirs.set(fh, {
      names: ['.', '..', ...listing.map((e) => e.name)],
      attrs: [undefined, undefined, ...listing.map((e) => e.attr)],
    });
    this.#session.replyOpen(r.id, fh, false, false);
  }

  async #readdir(r: FuseRequest): Promise<void> {
    const dir = this.#dirs.get(r.fh!);
    if (dir === undefined) throw errnoError(errno.EBADF);
    const inos: number[] = [];
    const modes: number[] = [];
    dir.names.forEach((name, i) => {
      // d_ino of a name the kernel has not looked up: any nonzero number (readdir(3)
      // skips entries whose d_ino is 0); stat gives the real one.
      inos.push(name === '.' ? r.ino : (this.#nodes.child(r.ino, name) ?? 0xffff_ffff));
      modes.push((dir.attrs[i]?.mode ?? S_IFDIR) & S_IFMT);
    });
    this.#session.replyDir(r.id, dir.names, inos, modes, r.offset!);
  }

  /**
   * Entries with their attributes. Each entry that goes out is a lookup the kernel now
   * holds, so ids are handed out for as many as can fit, and those that did not fit are
   * forgotten again.
   */
  async #readdirplus(r: FuseRequest): Promise<void> {
    const dir = this.#dirs.get(r.fh!);
    if (dir === undefined) throw errnoError(errno.EBADF);
    const from = r.offset!;
    const to = Math.min(dir.names.length, from + Math.ceil(r.size! / MIN_DIRENTPLUS));
    const names: string[] = [];
    const attrs: FuseAttr[] = [];
    const inos: number[] = [];
    for (let i = from; i < to; i++) {
      const name = dir.names[i]!;
      const attr = dir.attrs[i];
      names.push(name);
      if (attr === undefined) {
        // "." and "..": listed, with no attributes and no lookup.
        attrs.push([name === '.' ? r.ino : ROOT_INO, S_IFDIR, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        inos.push(0);
      } else {
        const e = this.#entry(r.ino, name, attr);
        attrs.push(e.attr);
        inos.push(e.ino);
      }
    }
    const sent = this.#session.replyDirPlus(r.id, names, attrs, inos, from, this.#entryTimeoutS, this.#attrTimeoutS);
    for (let k = sent; k < inos.length; k++) if (inos[k] !== 0) this.#forget(inos[k]!, 1);
  }

  async #open(r: FuseRequest): Promise<void> {
    const fid = this.#fidOf(r.ino);
    // Held first: from here on, no rename or unlink can take the file from this handle.
    // A name that leads to another file or none now answers ESTALE, so the kernel looks
    // the name up again (and an O_CREAT open of a name removed outside then creates it).
    await this.#holdForOpen(r.ino, fid);
    try {
      await this.#opened(r, fid);
    } catch (e) {
      await this.#server.release(fid);
      throw e;
    }
  }

  /**
   * A node removed through the mount has no path: the kernel's path walk found it before
   * the removal, and the open gets it, as on a local file system. A removal or rename
   * through the mount that is half-way (the backing directory changed, our names not
   * yet) is waited for, then the names are looked at again: the open came first.
   */
  async #holdForOpen(ino: number, fid: Fid): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const started = this.#removalsStarted;
      const at = this.#nodes.path(ino);
      try {
        await this.#server.hold(fid, at);
        return;
      } catch (e) {
        // Only what the mount did meanwhile can explain the miss: a removal that
        // overlapped this attempt, a new name for the node, or a hold for the kernel's
        // sake still being taken. A name changed outside the mount goes back to the
        // kernel (ESTALE: it looks again).
        const overlapped = this.#removals.size > 0 || this.#removalsStarted !== started;
        const explained = overlapped || this.#nodes.path(ino) !== at || this.#keptForKernel.has(ino);
        if (!explained || errnoOf(e) !== errno.ESTALE || attempt === MAX_OPEN_ATTEMPTS) throw e;
        await Promise.allSettled([...this.#removals, ...this.#keeping]);
        await nextTurn();
      }
    }
  }

  /** Runs an unlink or rename, known to opens meanwhile (see #holdForOpen). */
  async #removal(body: () => Promise<void>): Promise<void> {
    this.#removalsStarted++;
    const run = body();
    this.#removals.add(run);
    try {
      await run;
    } finally {
      this.#removals.delete(run);
    }
  }

  async #opened(r: FuseRequest, fid: Fid): Promise<void> {
    // Close-to-open: a change made outside the server since we last looked shows now, as
    // a callback break whose kernel invalidation (pages and size) lands before the open is
    // answered. Whatever pages the kernel still holds then are as current as the cache,
    // so it keeps them (keep_cache); with caching off it keeps nothing across opens.
    // A change seen now breaks only callbacks that were promised; the kernel's copy of
    // the attributes and pages must go whether or not one was.
    const changed = await this.#server.revalidate(fid);
    if (changed) this.#names.fileChanged(fid);
    if (changed && !this.#invalidating.has(r.ino)) {
      this.#invalidating.set(r.ino, this.#session.invalidate(r.ino));
    }
    await this.#invalidated(r.ino);
    // O_TRUNC (the kernel drops its own pages and size when this open succeeds).
    if ((r.flags! & O_TRUNC) !== 0 && (r.flags! & O_ACCMODE) !== 0) await this.#truncate(fid, 0);
    const fh = this.#newHandle(r.ino, fid);
    this.#session.replyOpen(r.id, fh, this.#cache !== undefined, false);
  }

  /**
   * A file handle, its data requests routed to the next request worker (if any), for a
   * file the server holds open for it (until the file's last handle is released).
   */
  #newHandle(ino: number, fid: Fid): number {
    const key = fid.toString();
    this.#opens.set(key, (this.#opens.get(key) ?? 0) + 1);
    const fh = this.#nextFh++;
    this.#files.set(fh, { ino, fid });
    // Routed, even to this thread (consumer 0): the session's readers serve its cached
    // reads by the Fid of the route.
    const consumer = this.#workers.length > 0 ? this.#workers[this.#nextWorker++ % this.#workers.length]!.consumer : 0;
    this.#session.route(fh, consumer, fid.cell, fid.volume, fid.vnode, fid.unique);
    return fh;
  }

  /** Resolves once the kernel has dropped what a callback break on `ino` made stale. */
  async #invalidated(ino: number): Promise<void> {
    const ticket = this.#invalidating.get(ino);
    if (ticket === undefined) return;
    if (this.#session.invalidated() < ticket) {
      await new Promise<void>((resolve) => this.#invalidationWaiters.push({ ticket, resolve }));
    }
    if (this.#invalidating.get(ino) === ticket) this.#invalidating.delete(ino);
  }

  /**
   * Runs a change of the names at `paths` (and of the files of nodes `inos`: nlink,
   * ctime), then, whether it succeeded or not, drops what the name cache had of them.
   */
  async #changing<T>(paths: string[], inos: number[], body: () => Promise<T>): Promise<T> {
    const fids = inos.map((ino) => this.#fidByIno.get(ino));
    try {
      return await body();
    } finally {
      for (const p of paths) this.#names.nameChanged(p);
      for (const fid of fids) if (fid !== undefined) this.#names.fileChanged(fid);
    }
  }

  /** A node's attributes changed (setattr): the name cache drops its copies. */
  #attrsChanged(ino: number): void {
    const fid = this.#fidByIno.get(ino);
    const at = this.#nodes.path(ino);
    if (fid !== undefined) this.#names.fileChanged(fid);
    else if (at !== undefined) this.#names.attrChanged(at);
  }

  async #create(r: FuseRequest): Promise<void> {
    const at = this.#childPath(r.ino, r.name!);
    const attr = await this.#changing([at], [], () => this.#server.create(at, r.mode!, callerOf(r), true));
    const e = this.#entry(r.ino, r.name!, attr);
    const fh = this.#newHandle(e.ino, attr.fid!);
    this.#session.replyCreate(r.id, e.attr, this.#entryTimeoutS, this.#attrTimeoutS, fh, this.#cache !== undefined);
  }

  async #mknod(r: FuseRequest): Promise<void> {
    const at = this.#childPath(r.ino, r.name!);
    const attr = await this.#changing([at], [], () => this.#server.mknod(at, r.mode!, r.rdev!, callerOf(r)));
    this.#replyEntry(r, r.ino, r.name!, attr);
  }

  async #symlink(r: FuseRequest): Promise<void> {
    const at = this.#childPath(r.ino, r.name!);
    const attr = await this.#changing([at], [], () => this.#server.symlink(r.target!, at, callerOf(r)));
    this.#replyEntry(r, r.ino, r.name!, attr);
  }

  async #readlink(r: FuseRequest): Promise<void> {
    this.#session.replyReadlink(r.id, await this.#server.readlink(this.#pathOf(r.ino)));
  }

  async #link(r: FuseRequest): Promise<void> {
    const to = this.#childPath(r.newParent!, r.newName!);
    const attr = await this.#changing([to], [r.ino], () => this.#server.link(this.#pathOf(r.ino), to));
    this.#replyEntry(r, r.newParent!, r.newName!, attr);
  }

  async #read(r: FuseRequest): Promise<void> {
    const file = this.#files.get(r.fh!);
    if (file === undefined) throw errnoError(errno.EBADF);
    await this.#data.read(r, file.fid);
  }

  async #write(r: FuseRequest): Promise<void> {
    const file = this.#files.get(r.fh!);
    if (file === undefined) throw errnoError(errno.EBADF);
    await this.#data.write(r, file.fid);
  }

  async #flush(r: FuseRequest): Promise<void> {
    const file = this.#files.get(r.fh!);
    if (file === undefined) this.#session.replyError(r.id, 0);
    else await this.#data.flush(r, file.fid, r.op === this.#ops.fsync);
  }

  async #release(r: FuseRequest): Promise<void> {
    const file = this.#files.get(r.fh!);
    this.#session.unroute(r.fh!);
    this.#files.delete(r.fh!);
    if (file !== undefined) {
      const key = file.fid.toString();
      const left = this.#opens.get(key)! - 1;
      if (left > 0) this.#opens.set(key, left);
      else {
        this.#opens.delete(key);
        // Its store at close has happened: what was kept of it predates that.
        this.#names.fileChanged(file.fid);
      }
      await this.#server.release(file.fid);
    }
    this.#session.replyError(r.id, 0);
  }

  async #unlink(r: FuseRequest): Promise<void> {
    const rel = this.#childPath(r.ino, r.name!);
    await this.#removal(async () => {
      await this.#beforeRemoval(r.ino, r.name!);
      const node = this.#nodes.child(r.ino, r.name!);
      await this.#changing([rel], node === undefined ? [] : [node], () => this.#server.unlink(rel));
      this.#nodes.unlinked(r.ino, r.name!);
    });
    this.#session.replyError(r.id, 0);
  }

  /**
   * A file about to lose its name stores its dirty data first, while the name still
   * leads to it, and is held for the kernel's sake. The removal never fails for that
   * data: a store that fails here is the cache's to sort (a transient failure stays
   * dirty; once the file is gone the server refuses it for good, and it is salvaged).
   */
  async #beforeRemoval(parent: number, name: string): Promise<void> {
    const ino = this.#nodes.child(parent, name);
    const fid = ino === undefined ? undefined : this.#fidByIno.get(ino);
    if (ino === undefined || fid === undefined) return;
    if (this.#cache?.cachedLength(fid) !== undefined) await this.#cache.flush(fid).catch(() => {});
    // The kernel holds the node and may be opening it this moment (its path walk came
    // before this removal): as on a local file system, that open must get this file,
    // so the server holds it until the kernel forgets the node.
    if (!this.#keptForKernel.has(ino)) {
      this.#keptForKernel.set(ino, fid);
      const keeping = this.#server.hold(fid, this.#childPath(parent, name));
      this.#keeping.add(keeping);
      void keeping.catch(() => {}).finally(() => this.#keeping.delete(keeping));
      // By the name being removed: the server's own last path of the file may be one
      // the mount has since moved it from (a directory above it renamed, say).
      await keeping.catch(() => this.#keptForKernel.delete(ino));
    }
  }

  async #rmdir(r: FuseRequest): Promise<void> {
    const at = this.#childPath(r.ino, r.name!);
    await this.#changing([at], [], () => this.#server.rmdir(at));
    this.#nodes.unlinked(r.ino, r.name!);
    this.#session.replyError(r.id, 0);
  }

  async #mkdir(r: FuseRequest): Promise<void> {
    const at = this.#childPath(r.ino, r.name!);
    const attr = await this.#changing([at], [], () => this.#server.mkdir(at, r.mode!, callerOf(r)));
    this.#replyEntry(r, r.ino, r.name!, attr);
  }

  async #rename(r: FuseRequest): Promise<void> {
    const flags = r.flags!;
    if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) !== 0) throw errnoError(errno.EINVAL);
    const from = this.#childPath(r.ino, r.name!);
    const to = this.#childPath(r.newParent!, r.newName!);
    const nodes = [this.#nodes.child(r.ino, r.name!), this.#nodes.child(r.newParent!, r.newName!)].filter((n) => n !== undefined);
    await this.#removal(async () => {
      if ((flags & RENAME_EXCHANGE) === 0) await this.#beforeRemoval(r.newParent!, r.newName!);
      await this.#changing([from, to], nodes, () => this.#server.rename(from, to, flags));
      if ((flags & RENAME_EXCHANGE) !== 0) this.#nodes.exchanged(r.ino, r.name!, r.newParent!, r.newName!);
      else this.#nodes.moved(r.ino, r.name!, r.newParent!, r.newName!);
    });
    this.#session.replyError(r.id, 0);
  }

  async #statfs(r: FuseRequest): Promise<void> {
    const s = await this.#server.statfs();
    this.#session.replyStatfs(r.id, [s.bsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.namemax]);
  }
}

/** The requester of a create: the new node's owner. */
function callerOf(r: FuseRequest): Requester {
  return { uid: r.callerUid!, gid: r.callerGid! };
}

function checkTimeout(value: number | undefined, name: string, fallback = 1): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !(v >= 0) || v === Infinity) throw outOfRange(name, 'a finite number >= 0', v);
  return v;
}

/** Lets a request worker finish what it took (its replies go nowhere now), then ends it. */
async function drainWorker(worker: Worker): Promise<void> {
  const drained = new Promise<void>((resolve) => {
    worker.on('message', (m: RequestWorkerReply) => m === 'drained' && resolve());
    worker.once('exit', () => resolve());
  });
  worker.postMessage('drain' satisfies RequestWorkerMessage);
  await drained;
  await worker.terminate();
}
