/**
 * The cache's shared memory: SharedArrayBuffers made by the manager that creates the
 * cache and handed to every thread that attaches. One vnode record per slot of the vnode
 * RefTable, and one buffer header, version and data block per slot of the buffer
 * RefTable (buffer slot = block index in the data arena).
 *
 * Who may write each field: W = under the vnode's write lock; R = under its lock in
 * either mode; A = atomically, with no lock (an RMW or a lone store); C = by the thread
 * that created the table entry, before it publishes the identity (nobody else uses the
 * record until then). Readers read under the lock in either mode, or (the read hit path)
 * optimistically, checked by writeSeq afterwards.
 *
 * Vnode record: 128 bytes (Float64 view index = slot * 16, Int32 view index = slot * 32)
 *
 * | bytes   | view    | who | field                                                    |
 * |---------|---------|-----|----------------------------------------------------------|
 * | 0-7     | f64[0]  | W   | dataVersion: the server's version we know; -1 before any  |
 * |         |         |     | status                                                    |
 * | 8-15    | f64[1]  | W   | bufDataVersionLow: buffers older than this are invalid    |
 * | 16-23   | f64[2]  | W   | length: the file's length as this client sees it          |
 * | 24-31   | f64[3]  | W   | serverLength: the length at the last status or store      |
 * | 32-39   | f64[4]  | W   | truncPos: lowest length truncated to since the last store,|
 * |         |         |     | or Infinity                                               |
 * | 40-43   | i32[10] | -   | lock: RwLock word guarding the record and the file's      |
 * |         |         |     | buffers                                                   |
 * | 44-47   | i32[11] | A   | breakSeq: bumped by every callback break                  |
 * | 48-51   | i32[12] | W   | statusSeq: breakSeq when the current status was fetched;  |
 * |         |         |     | status is current iff statusSeq == breakSeq (and          |
 * |         |         |     | dataVersion >= 0)                                         |
 * | 52-55   | i32[13] | W   | dirtyHead: first dirty buffer slot, or -1                 |
 * | 56-59   | i32[14] | W   | storesInFlight: our store RPCs not yet answered (waited   |
 * |         |         |     | on unlocked)                                              |
 * | 60-63   | i32[15] | W/A | flags: DIRTY_HELD (W: the record holds a ref on itself    |
 * |         |         |     | until clean), STORE_QUEUED (A: a store-behind job is      |
 * |         |         |     | queued or running) and CHANGED_UNDER_DIRTY (W: someone    |
 * |         |         |     | else changed the file while we had unstored changes: the  |
 * |         |         |     | next store is a conflict) and LENGTH_SET (W: a truncation |
 * |         |         |     | set the length since the last store) and RESTORED (W:     |
 * |         |         |     | found in a cache file at start; its clean buffers are     |
 * |         |         |     | checked at the first status: seal.ts)                     |
 * | 64-79   | i32[16..19] | C | identity: the Fid the record was initialized for;       |
 * |         |         |     | written last, so a thread that finds a new entry before   |
 * |         |         |     | it is ready sees a mismatch and waits                     |
 * | 80-83   | i32[20] | C   | generation: bumped whenever the slot names a new Fid;     |
 * |         |         |     | part of every buffer key, so buffers of an earlier Fid    |
 * |         |         |     | never match                                               |
 * | 84-87   | i32[21] | R/A | cached: buffers of this file that are valid now (A: also  |
 * |         |         |     | lowered by whoever recycles one of them)                  |
 * | 88-91   | i32[22] | W   | storeOwner: token of the thread whose store batch is in   |
 * |         |         |     | flight                                                    |
 * | 92-95   | i32[23] | W   | dirtyCount: buffers on the dirty list                     |
 * | 96-103  | f64[12] | W   | inFlightTruncPos: the truncPos of the store batch in      |
 * |         |         |     | flight until the server has applied it, or Infinity;      |
 * |         |         |     | truncPos then holds only truncations made since the batch |
 * |         |         |     | was taken                                                 |
 * | 104-107 | i32[26] | -   | writeSeq: the lock's write sequence, odd while a writer   |
 * |         |         |     | holds it (RwLock seqIndex); the read hit path's           |
 * |         |         |     | optimistic check                                          |
 * | 108-111 | i32[27] | W   | storeErrorSeq: the cache-wide error sequence number of    |
 * |         |         |     | the last permanent store failure, or 0 (errseq_t's role)  |
 * | 112-115 | i32[28] | W   | storeErrno: the errno of that failure                     |
 * | 116-119 | i32[29] | C   | identitySeal: identityChecksum(identity, generation),     |
 * |         |         |     | written before the identity; recovery keeps a record only |
 * |         |         |     | if it matches (a flipped identity would name another file)|
 *
 * Buffer header: 40 bytes (Int32 view index = slot * 10); the vnode named by the
 * identity is the one whose lock guards it.
 *
 * | bytes | view      | who | field                                                 |
 * |-------|-----------|-----|-------------------------------------------------------|
 * | 0-3   | i32[0]    | *   | state: VALID 1, DIRTY 2, BUSY 4 (being fetched),      |
 * |       |           |     | PREFETCHED 8, STORING 16 (in a store batch not yet    |
 * |       |           |     | answered), RESTORED 32 (found clean in a cache file,  |
 * |       |           |     | not yet checked, never served as it is), with         |
 * |       |           |     | SEAL_CHECKED 64 once its bytes matched its seal       |
 * |       |           |     | (only its version is left to check); while BUSY,      |
 * |       |           |     | bits 8-31 hold the claiming                           |
 * |       |           |     | thread's token (mod 2^24), so one CAS claims, and a   |
 * |       |           |     | claim by a thread that died can be recognised and     |
 * |       |           |     | taken back                                            |
 * | 4-19  | i32[1..4] | C   | identity: vnode slot, vnode generation, block number  |
 * |       |           |     | low and high 32 bits; written last, as for vnodes     |
 * | 20-23 | i32[5]    | W   | dirtyNext: next dirty buffer of the same vnode, or -1 |
 * | 24-27 | i32[6]    | W   | dirtyPrev                                             |
 * | 28-35 | i32[7..8] | W   | dirtyLo, dirtyHi: the bytes of the block this client  |
 * |       |           |     | wrote since it was last stored (from the first to the |
 * |       |           |     | last written byte); a store sends only these          |
 *
 * * state: claimed Busy by CAS under R; filled, made dirty, stored and dropped under W; a
 *   claim of a thread that died taken back by CAS (A); PREFETCHED cleared by CAS (A) by
 *   the first read, even on the optimistic path.
 *
 * versions: Float64Array, one per buffer: the dataVersion its contents are correct for.
 * data: blockSize bytes per buffer. Both written under W, or under R by the thread whose
 * Busy claim the buffer carries.
 * seals (a cache file only): Uint32Array, one per buffer: the checksum of the block as
 * fetched, with its Fid, block number and version (seal.ts); written with the data.
 * stats: per-thread rows of counters; see STAT_ROWS.
 */

import { fidHash } from '../core/fid.js';

export const VNODE_BYTES = 128;
export const VNODE_F64 = VNODE_BYTES / 8;
export const VNODE_I32 = VNODE_BYTES / 4;

export const enum VnodeF64 {
  DataVersion = 0,
  BufDataVersionLow = 1,
  Length = 2,
  ServerLength = 3,
  TruncPos = 4,
  InFlightTruncPos = 12,
}

export const enum VnodeI32 {
  Lock = 10,
  BreakSeq = 11,
  StatusSeq = 12,
  DirtyHead = 13,
  StoresInFlight = 14,
  Flags = 15,
  Identity = 16,
  Generation = 20,
  Cached = 21,
  StoreOwner = 22,
  DirtyCount = 23,
  /** The vnode lock's write sequence: lets the read hit path check without writing. */
  WriteSeq = 26,
  StoreErrorSeq = 27,
  StoreErrno = 28,
  IdentitySeal = 29,
}

export const VNODE_DIRTY_HELD = 1;
export const VNODE_STORE_QUEUED = 2;
export const VNODE_CHANGED_UNDER_DIRTY = 4;
export const VNODE_LENGTH_SET = 8;
export const VNODE_RESTORED = 16;

export const HEADER_BYTES = 40;
export const HEADER_I32 = HEADER_BYTES / 4;

export const enum HeaderI32 {
  State = 0,
  Identity = 1,
  DirtyNext = 5,
  DirtyPrev = 6,
  DirtyLo = 7,
  DirtyHi = 8,
}

export const enum BufferState {
  Valid = 1,
  Dirty = 2,
  Busy = 4,
  Prefetched = 8,
  Storing = 16,
  Restored = 32,
  SealChecked = 64,
}

/** The state word of a buffer claimed by the thread with `token`. */
export function busyState(token: number): number {
  return (BufferState.Busy | ((token & 0xff_ffff) << 8)) | 0;
}

/** The token (mod 2^24) of the thread that claimed a Busy buffer. */
export function claimerOf(state: number): number {
  return (state >>> 8) & 0xff_ffff;
}

/** Names of the shared counters, in their order in a stats row. */
export const STAT_NAMES = [
  'hits',
  'misses',
  'fetchRpcs',
  'fetchBytes',
  'storeRpcs',
  'storeBytes',
  'fetchesAvoidedByTruncation',
  'buffersKeptValid',
  'buffersInvalidated',
  'prefetchesIssued',
  'prefetchBlocks',
  'prefetchBlocksUsed',
  'statusRpcs',
  'busyRetries',
  'backgroundFailures',
  'claimsTakenBack',
  'batchesReclaimed',
  'storeBehindBatches',
  'storeBehindFailures',
  'accessRpcs',
  'accessHits',
  'storesRefused',
  'bytesSalvaged',
  'salvageFailures',
  'storeConflicts',
] as const;

export type StatName = (typeof STAT_NAMES)[number];
export type CacheStats = Record<StatName, number>;

export const STAT_INDEX = Object.fromEntries(STAT_NAMES.map((n, i) => [n, i])) as Record<StatName, number>;

/**
 * Stats: STAT_ROWS rows of 32 BigInt64 counters (256 bytes, four cache lines), then one
 * Int32 word that hands rows out and one that numbers permanent store failures (the
 * storeErrorSeq of vnode records: cache-wide, so a recycled record never repeats one). Each thread counts in a row of its own, so counting a
 * hit never bounces a cache line between threads; reading the stats sums the rows.
 */
export const STAT_ROWS = 64;
const STAT_ROW_WORDS = 32;
if (STAT_NAMES.length > STAT_ROW_WORDS) throw new Error('layout: more counters than a stats row holds');
const STAT_BYTES = STAT_ROWS * STAT_ROW_WORDS * 8 + 8;

/** The shared buffers of one cache, as every thread sees them. */
export interface SharedCacheMemory {
  readonly vnodes: SharedArrayBuffer;
  readonly headers: SharedArrayBuffer;
  readonly versions: SharedArrayBuffer;
  readonly data: SharedArrayBuffer;
  readonly stats: SharedArrayBuffer;
  /** A cache file's block seals; undefined for a cache in memory only. */
  readonly seals?: SharedArrayBuffer;
}

/** Every vnode record names no Fid yet, not even 0.0.0.0. */
export function clearVnodeIdentities(vnodes: SharedArrayBuffer): void {
  const words = new Int32Array(vnodes);
  for (let at = VnodeI32.Identity; at < words.length; at += VNODE_I32) words.fill(-1, at, at + 4);
}

/** The stats region: never in a cache file (counts start at zero with every cache). */
export function allocateStats(): SharedArrayBuffer {
  return new SharedArrayBuffer(STAT_BYTES);
}

export function allocateCacheMemory(maxVnodes: number, buffers: number, blockSize: number): SharedCacheMemory {
  const vnodes = new SharedArrayBuffer(maxVnodes * VNODE_BYTES);
  clearVnodeIdentities(vnodes);
  return {
    vnodes,
    headers: new SharedArrayBuffer(buffers * HEADER_BYTES),
    versions: new SharedArrayBuffer(buffers * 8),
    data: new SharedArrayBuffer(buffers * blockSize),
    stats: allocateStats(),
  };
}

/** Typed views over SharedCacheMemory, made once per thread. */
export class CacheViews {
  readonly vnodeF64: Float64Array;
  readonly vnodeI32: Int32Array;
  readonly headers: Int32Array;
  readonly versions: Float64Array;
  readonly data: Uint8Array;
  readonly stats: BigInt64Array;
  readonly seals: Uint32Array | undefined;
  readonly #statBase: number;
  /** [row dealer, store error sequence]. */
  readonly #tail: Int32Array;

  constructor(memory: SharedCacheMemory) {
    this.vnodeF64 = new Float64Array(memory.vnodes);
    this.vnodeI32 = new Int32Array(memory.vnodes);
    this.headers = new Int32Array(memory.headers);
    this.versions = new Float64Array(memory.versions);
    this.data = new Uint8Array(memory.data);
    this.seals = memory.seals === undefined ? undefined : new Uint32Array(memory.seals);
    this.stats = new BigInt64Array(memory.stats, 0, STAT_ROWS * STAT_ROW_WORDS);
    const rowDealer = new Int32Array(memory.stats, STAT_ROWS * STAT_ROW_WORDS * 8, 2);
    this.#tail = rowDealer;
    // Past STAT_ROWS threads, rows are shared: still exact, since counts are atomic adds.
    this.#statBase = (Atomics.add(rowDealer, 0, 1) % STAT_ROWS) * STAT_ROW_WORDS;
  }

  count(name: StatName, n = 1): void {
    Atomics.add(this.stats, this.#statBase + STAT_INDEX[name], BigInt(n));
  }

  /** A new number for a permanent store failure: 1, 2, ... across every thread. */
  nextStoreErrorSeq(): number {
    return Atomics.add(this.#tail, 1, 1) + 1;
  }

  readStats(): CacheStats {
    const out = {} as CacheStats;
    STAT_NAMES.forEach((name, i) => {
      let sum = 0n;
      for (let row = 0; row < STAT_ROWS; row++) sum += Atomics.load(this.stats, row * STAT_ROW_WORDS + i);
      out[name] = Number(sum);
    });
    return out;
  }
}

/** The identitySeal of a vnode record naming (a, b, c, d) in `generation`. */
export function identityChecksum(a: number, b: number, c: number, d: number, generation: number): number {
  return fidHash(fidHash(a >>> 0, b >>> 0, c >>> 0, d >>> 0), generation >>> 0, 0x5ea1, 0) | 0;
}

/** Whether an identity (four words at `at`) names (a, b, c, d); read last word first. */
export function identityIs(words: Int32Array, at: number, a: number, b: number, c: number, d: number): boolean {
  return (
    Atomics.load(words, at + 3) === (d | 0) &&
    Atomics.load(words, at + 2) === (c | 0) &&
    Atomics.load(words, at + 1) === (b | 0) &&
    Atomics.load(words, at) === (a | 0)
  );
}

/** Writes an identity word by word, the first word last: a reader checks it first-last. */
export function storeIdentity(words: Int32Array, at: number, a: number, b: number, c: number, d: number): void {
  Atomics.store(words, at, -1);
  Atomics.store(words, at + 3, d | 0);
  Atomics.store(words, at + 2, c | 0);
  Atomics.store(words, at + 1, b | 0);
  Atomics.store(words, at, a | 0);
}

/** The block number a buffer header at `h` names. */
export function blockOf(headers: Int32Array, h: number): number {
  return (headers[h + HeaderI32.Identity + 3]! >>> 0) * 2 ** 32 + (headers[h + HeaderI32.Identity + 2]! >>> 0);
}
