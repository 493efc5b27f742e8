/**
 * The data requests of a mount (read, write, flush and fsync of an open file), served
 * from the cache, or straight from the server with caching off. The mount's own thread
 * uses it for handles it keeps; each request worker uses it for the handles routed to it.
 */
import type { CacheManager } from '../cache/cache-manager.js';
import type { Fid } from '../core/fid.js';
import type { FileServer } from '../server/file-server.js';
import { storeFailure } from '../cache/store-error.js';
import { errno, errnoError } from './errno.js';
import type { FuseRequest, FuseSessionHandle } from './fuse.js';

/** The kernel's largest read (max_write, which sets max_pages, in native/fuse). */
const READ_BUFFER = 1024 * 1024;
const MAX_READ_BUFFERS = 16;
/** Handles whose last seen store error this thread remembers; the oldest is forgotten first. */
const MAX_HANDLES_REMEMBERED = 65536;

export class DataRequests {
  readonly #session: FuseSessionHandle;
  readonly #cache: CacheManager | undefined;
  readonly #server: FileServer | undefined;
  readonly #readBuffers: Buffer[] = [];
  readonly #maxFileSize: number;
  /** Per file handle: the storeError sequence it has seen (or that was current when it began). */
  readonly #errorSeen = new Map<number, number>();

  /**
   * Exactly one of `cache` (caching on) and `server` (caching off). `maxFileSize`: the
   * largest file the server can store; a write past it fails at once, as on a local disk.
   */
  constructor(session: FuseSessionHandle, cache: CacheManager | undefined, server: FileServer | undefined, maxFileSize: number) {
    this.#session = session;
    this.#cache = cache;
    this.#server = server;
    this.#maxFileSize = maxFileSize;
  }

  async read(r: FuseRequest, fid: Fid): Promise<void> {
    if (this.#cache === undefined) {
      this.#session.replyData(r.id, (await this.#server!.fetchData(fid, r.offset!, r.size!)).data);
      return;
    }
    // The reply copies the bytes into the kernel at once, so one read's buffer serves the
    // next: no allocation (and no zero-filling) per request.
    const buf = this.#readBuffers.pop() ?? Buffer.allocUnsafe(Math.max(r.size!, READ_BUFFER));
    try {
      const into = buf.length >= r.size! ? buf.subarray(0, r.size!) : Buffer.allocUnsafe(r.size!);
      const n = await this.#cache.readInto(fid, r.offset!, into);
      this.#session.replyData(r.id, into.subarray(0, n));
    } finally {
      if (this.#readBuffers.length < MAX_READ_BUFFERS) this.#readBuffers.push(buf);
    }
  }

  /** Acknowledged once the cache holds the bytes (caching off: once the server has them). */
  async write(r: FuseRequest, fid: Fid): Promise<void> {
    // As a local file system: nothing at or past the limit (EFBIG), a short write up to it.
    const room = this.#maxFileSize - r.offset!;
    if (room <= 0 && r.data!.length > 0) throw errnoError(errno.EFBIG);
    const data = r.data!.length > room ? r.data!.subarray(0, room) : r.data!;
    if (this.#cache !== undefined) this.#seenBy(r.fh!, fid);
    if (this.#cache !== undefined) await this.#cache.write(fid, r.offset!, data);
    else await this.#server!.storeData(fid, r.offset!, data);
    this.#session.replyWrite(r.id, data.length);
  }

  /**
   * close(2) and fsync(2) (`fsync`): the file's dirty data is stored before they return. A store of
   * the file refused for good since this handle last looked (by any handle's flush, or
   * store-behind) is reported to it once, with its errno, as Linux does (errseq_t); a
   * transient failure (ENOSPC, say) is reported as itself, and the data stays dirty.
   */
  async flush(r: FuseRequest, fid: Fid, fsync: boolean): Promise<void> {
    const cache = this.#cache;
    // close(2) of a handle that never wrote (a reader's) stores nothing and reports
    // nothing: another handle's unstored data and its failures are that handle's.
    if (cache === undefined || (!fsync && !this.#errorSeen.has(r.fh!))) {
      this.#session.replyError(r.id, 0);
      return;
    }
    const seen = this.#seenBy(r.fh!, fid);
    let failure: unknown;
    await cache.flush(fid).catch((e: unknown) => (failure = e));
    const error = cache.storeError(fid);
    if (error.seq > seen) {
      this.#errorSeen.set(r.fh!, error.seq);
      this.#session.replyError(r.id, error.errno);
      return;
    }
    // A refusal this handle has already been told of is not raised again.
    if (failure !== undefined && !(error.seq !== 0 && storeFailure(failure) === 'permanent')) throw failure;
    this.#session.replyError(r.id, 0);
  }

  /** The storeError sequence handle `fh` has seen; sampled at its first write or flush. */
  #seenBy(fh: number, fid: Fid): number {
    let seen = this.#errorSeen.get(fh);
    if (seen === undefined) {
      seen = this.#cache!.storeError(fid).seq;
      if (this.#errorSeen.size >= MAX_HANDLES_REMEMBERED) this.#errorSeen.delete(this.#errorSeen.keys().next().value!);
      this.#errorSeen.set(fh, seen);
    }
    return seen;
  }
}
