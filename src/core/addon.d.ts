// Hand-written types of the native addon (native/addon/). Only src/core/native.ts loads
// it; everything else goes through the typed wrappers.

import type { RefTableStats } from './ref-table.js';

export interface StatusCodes {
  readonly ok: number;
  readonly notFound: number;
  readonly tableFull: number;
  readonly notHeld: number;
  readonly badSlot: number;
  readonly lockNotHeld: number;
  readonly wouldBlock: number;
  readonly badArgument: number;
  readonly closed: number;
}

/** Word offsets of a RefTable's index (native/core/ref_table.h, namespace reftable). */
export interface RefTableLayout {
  readonly seq: number;
  readonly closed: number;
  readonly bucketsBase: number;
  readonly entryWords: number;
  readonly cell: number;
  readonly volume: number;
  readonly vnode: number;
  readonly unique: number;
  readonly hash: number;
  readonly next: number;
  readonly referenced: number;
  /** Whether the recycler's asymmetric fence lets readers count with plain stores. */
  readonly lightReaders: boolean;
}

export interface RefTableAttachment {
  /** The attachment's local index, for scratch[Table]. */
  readonly local: number;
  /** The table's index, in RefTableLayout. */
  readonly index: SharedArrayBuffer;
  /** This attachment's counts, one int32 per slot. */
  readonly counts: SharedArrayBuffer;
  readonly mask: number;
  readonly capacity: number;
}

/** Hot calls return a slot, or a Status (negative); they never throw. */
export interface RefTableBinding {
  readonly maxCapacity: number;
  readonly layout: RefTableLayout;
  create(capacity: number): number;
  attach(id: number): RefTableAttachment;
  detach(local: number, close: boolean): void;
  /** Reads the table and Fid from scratch; returns a slot or status.notFound. */
  findHold(): number;
  /** findHold under the writers' lock: the benchmark's pre-2008 baseline. */
  findHoldExclusive(): number;
  /** Reads the table and Fid from scratch; writes scratch[Created]; returns a slot. */
  getHold(): number;
  hold(slot: number): number;
  release(slot: number): number;
  disown(slot: number): number;
  releaseDisowned(slot: number): number;
  findHoldMany(fids: Uint32Array, out: Int32Array): void;
  releaseMany(slots: Int32Array): void;
  refCount(slot: number): number;
  /** Writes the slot's Fid into scratch[Cell..Hash]. */
  fidAt(slot: number): boolean;
  /** Reads the key from scratch[Cell..Hash]. */
  removeIfIdle(slot: number): boolean;
  /** Names slot with the key in scratch (rebuilding a table); a Status. */
  restore(slot: number, disowned: boolean): number;
  stats(): RefTableStats;
}

export interface RwLockBits {
  readonly writer: number;
  readonly pending: number;
  readonly waiters: number;
  readonly readerMask: number;
}

/** Every call returns a number and never throws; a negative one is a Status. */
export interface RwLockBinding {
  readonly bits: RwLockBits;
  /** 1 when taken, 0 when not. */
  tryRead(words: Int32Array, index: number): number;
  tryWrite(words: Int32Array, index: number): number;
  /** The value to Atomics.wait on, or 0 to try again at once. */
  prepareWait(words: Int32Array, index: number, forWrite: boolean): number;
  /** Each returns 1 when sleepers must be woken (Atomics.notify), else 0. */
  releaseRead(words: Int32Array, index: number): number;
  releaseWrite(words: Int32Array, index: number): number;
  downgrade(words: Int32Array, index: number): number;
  releaseReadForUpgrade(words: Int32Array, index: number): number;
  /** 1 when upgraded, 0 when other readers hold shares. */
  tryUpgrade(words: Int32Array, index: number): number;
}

/** Calls used only by the benchmark. */
export interface BenchBinding {
  /** ns per Fid comparison in C++, hash first or field by field. */
  timeFidCompare(hashFirst: boolean, candidates: number, rounds: number): number;
  /** Voluntary context switches of the calling thread (Linux). */
  threadVoluntarySwitches(): number;
}

/**
 * The backing directory calls (native/addon/backing_binding.cpp). Paths and names are byte
 * strings (one char per byte); attributes are Float64Arrays of `attrWords` per node.
 * Every call rejects with an Error carrying `errno`, `code` and `syscall`.
 */
export interface BackingBinding {
  readonly attrWords: number;
  /** An O_PATH descriptor of the root, or -errno. */
  openRoot(path: string): number;
  lstat(root: number, path: string): Promise<Float64Array>;
  openFile(root: number, path: string, flags: number, mode: number, uid: number, gid: number): Promise<number>;
  mkdir(root: number, path: string, mode: number, uid: number, gid: number): Promise<Float64Array>;
  mknod(root: number, path: string, mode: number, rdev: number, uid: number, gid: number): Promise<Float64Array>;
  symlink(root: number, target: string, path: string, uid: number, gid: number): Promise<Float64Array>;
  readlink(root: number, path: string): Promise<string>;
  link(root: number, from: string, to: string): Promise<Float64Array>;
  unlink(root: number, path: string, directory: boolean): Promise<void>;
  rename(root: number, from: string, to: string, flags: number): Promise<void>;
  /** change: [which (1 uid, 2 gid, 4 mode), uid, gid, mode, atimeSec, atimeNsec, mtimeSec, mtimeNsec]. */
  setattr(root: number, path: string, change: Float64Array): Promise<Float64Array>;
  readdirPlus(root: number, path: string): Promise<{ names: string[]; attrs: Float64Array }>;
  statfs(root: number): Promise<Float64Array>;
  maxFileSize(root: number): Promise<number>;
}

/** A cache file's mapping and the block checksum (native/addon/cache_file_binding.cpp). */
export interface CacheFileBinding {
  /**
   * [unlock, willNeed, ...SharedArrayBuffers over the [offset, length] regions of the
   * file], or a positive errno. unlock() closes the file (and its flock); the mapping
   * stays for the views. willNeed(offset, length): MADV_WILLNEED on that part of the file.
   */
  map(path: string, bytes: number, regions: Float64Array): [() => void, (offset: number, length: number) => void, ...SharedArrayBuffer[]] | number;
  checksum(bytes: Uint8Array, offset: number, length: number, seed: number): number;
  /** out[i] = the checksum of block slots[i] of `data` with seeds[i], over several cores. */
  checksums(data: Uint8Array, blockSize: number, slots: Int32Array, seeds: Uint32Array, out: Uint32Array): void;
}

export interface Addon {
  readonly scratch: Uint32Array;
  readonly status: StatusCodes;
  /** The cache record positions and bits native code reads (native/core/cache_layout.h). */
  readonly cacheLayout: Readonly<Record<string, number>>;
  fidHash(cell: number, volume: number, vnode: number, unique: number): number;
  noop(): void;
  /** This thread's token, unique in the process and never reused. */
  readonly threadToken: number;
  /** Whether the thread that has `token` is still running. */
  threadAlive(token: number): boolean;
  readonly refTable: RefTableBinding;
  readonly rwLock: RwLockBinding;
  readonly bench: BenchBinding;
  readonly backing: BackingBinding;
  readonly cacheFile: CacheFileBinding;
}
