import { invalidArgType, typeError } from './errors.js';
import { Fid, checkFid, fidHash } from './fid.js';
import { addon, scratch, ScratchWord } from './native.js';
import { statusError } from './status-error.js';
import { checkInteger, checkObject, checkUint32 } from './validate.js';

const binding = addon.refTable;
const NOT_FOUND = addon.status.notFound;
const L = binding.layout;
const SEQ = L.seq;
const CLOSED = L.closed;
const BUCKETS = L.bucketsBase;
const ENTRY = L.entryWords;
const CELL = L.cell;
const VOLUME = L.volume;
const VNODE = L.vnode;
const UNIQUE = L.unique;
const HASH = L.hash;
const NEXT = L.next;
const REFERENCED = L.referenced;
/**
 * Whether this object probes and counts by itself, with plain stores and loads: Atomics
 * would cost ~6-10 ns each in Node 20 (builtin calls), more than the rest of a hit. Sound
 * where the recycler has an asymmetric fence (native/core/asymmetric_fence.h gives the
 * store-load order a reader needs) and the hardware keeps the other orders by itself:
 * x86-64 never moves a load after a later store, nor loads past each other, and V8 keeps
 * typed-array accesses in program order. Elsewhere every lookup and release is a native
 * call, with full fences: correct, and slower.
 */
const LIGHT = L.lightReaders && process.arch === 'x64';
/** #probe's answer when it cannot tell (a writer is busy, or the table is closed). */
const ASK_NATIVE = -2;
/** Probes that found a writer passing by before the native call takes over. */
const PROBE_ATTEMPTS = 3;
/** What a closed holder points at instead of the table: every probe asks native code. */
const CLOSED_INDEX = new Int32Array(BUCKETS);
CLOSED_INDEX[CLOSED] = 1;
const NO_COUNTS = new Int32Array(0);

/** @default 65536 */
export const DEFAULT_REF_TABLE_CAPACITY = 65_536;

export interface RefTableOptions {
  /**
   * How many entries the table holds. When every entry is held, getHold throws
   * ERR_CMKIT_TABLE_FULL; otherwise an idle entry is recycled (CLOCK order).
   * An integer from 1 to 16,777,216.
   * @default 65536
   */
  readonly capacity?: number;
}

/** Structured-clonable: post it to a worker and call RefTable.attach there. */
export interface RefTableDescriptor {
  readonly kind: 'cmkit.RefTable';
  readonly id: number;
}

export interface RefTableStats {
  /** Entries the table can hold. */
  readonly capacity: number;
  /** Slots ever used; `used - free` entries name a key, held or idle. */
  readonly used: number;
  /** Slots freed by removeIfIdleKey and not yet reused. */
  readonly free: number;
  /** Entries taken from one Fid and given to another. */
  readonly recycled: number;
  /** The sum of all refCounts (exact only when no thread is holding or releasing). */
  readonly totalRefs: number;
}

/**
 * A process-wide table of Fid entries with reference counts, shared by every thread.
 * Each entry has a slot: a small integer, stable while the entry names its Fid, that
 * later layers use to index their shared-memory records.
 *
 * A hit costs no native call and writes no memory another thread writes: the table's
 * index is shared memory that this object probes itself (a seqlock tells it when a
 * writer was changing it), and each holder counts its references in a shard of its own.
 * Inserts and recycling are native, under the writers' lock; the invariant that keeps a
 * held entry from being recycled is stated in native/core/ref_table.h. An entry whose
 * count drops to zero stays findable until the table needs its slot for another Fid.
 *
 * Each thread has its own RefTable object for the same table: construct on one thread,
 * pass `descriptor` to the others, and `RefTable.attach` it there. Each object is one
 * holder: what it holds when its thread exits (or it detaches) is released.
 */
export class RefTable {
  /** The largest capacity a table may have. */
  static readonly maxCapacity: number = binding.maxCapacity;

  readonly #id: number;
  readonly #local: number;
  readonly #mask: number;
  readonly #capacity: number;
  readonly #entries: number;
  /** The index: seq, chains, and names as int32 words (compared as `x | 0`). */
  #index: Int32Array;
  /** This holder's counts: written only by this thread. */
  #counts: Int32Array;
  #closed = false;

  // Set only while attach() runs the constructor for an existing table.
  static #attachingId: number | undefined;

  constructor(options: RefTableOptions = {}) {
    const attachingId = RefTable.#attachingId;
    if (attachingId !== undefined) {
      this.#id = attachingId;
    } else {
      checkObject(options, 'options');
      const capacity = checkInteger(
        options.capacity ?? DEFAULT_REF_TABLE_CAPACITY,
        'options.capacity',
        1,
        binding.maxCapacity,
      );
      this.#id = binding.create(capacity);
    }
    const a = binding.attach(this.#id);
    this.#local = a.local;
    this.#mask = a.mask;
    this.#capacity = a.capacity;
    this.#entries = BUCKETS + a.mask + 1;
    this.#index = new Int32Array(a.index);
    this.#counts = new Int32Array(a.counts);
  }

  /** Joins, on this thread, a table created on another. */
  static attach(descriptor: RefTableDescriptor): RefTable {
    checkObject(descriptor, 'descriptor');
    if (descriptor.kind !== 'cmkit.RefTable') {
      throw invalidArgType('descriptor', 'a RefTable descriptor', descriptor);
    }
    RefTable.#attachingId = checkUint32(descriptor.id, 'descriptor.id');
    try {
      return new RefTable();
    } finally {
      RefTable.#attachingId = undefined;
    }
  }

  get descriptor(): RefTableDescriptor {
    return { kind: 'cmkit.RefTable', id: this.#id };
  }

  /** Finds the entry for fid and adds a reference: its slot, or -1 if none. */
  findHold(fid: Fid): number {
    if (!(fid instanceof Fid)) throw invalidArgType('fid', 'an instance of Fid', fid);
    const slot = this.#probeHold(fid.cell, fid.volume, fid.vnode, fid.unique, fid.hash);
    if (slot !== ASK_NATIVE) return slot;
    this.#loadFid(fid, 'RefTable.findHold');
    return this.#found(binding.findHold(), 'RefTable.findHold');
  }

  /**
   * findHold as the cache manager did it before 2008: lookup and count change under the
   * table's writers' lock. Kept only as the benchmark's baseline (row B2); use findHold.
   */
  findHoldExclusive(fid: Fid): number {
    this.#loadFid(fid, 'RefTable.findHoldExclusive');
    return this.#found(binding.findHoldExclusive(), 'RefTable.findHoldExclusive');
  }

  /**
   * Finds or creates the entry for fid and adds a reference; returns its slot.
   * `onCreate(slot)` runs when the slot now names fid for the first time (new, or
   * recycled from another Fid), before any other thread can find it through this call.
   */
  getHold(fid: Fid, onCreate?: (slot: number) => void): number {
    if (!(fid instanceof Fid)) throw invalidArgType('fid', 'an instance of Fid', fid);
    const slot = this.#probeHold(fid.cell, fid.volume, fid.vnode, fid.unique, fid.hash);
    if (slot >= 0) {
      scratch[ScratchWord.Created] = 0;
      return slot;
    }
    this.#loadFid(fid, 'RefTable.getHold');
    return this.#created(binding.getHold(), onCreate);
  }

  /**
   * findHold for a key that is not a Fid: any four unsigned 32-bit words, hashed as a
   * Fid is. Keys and Fids share one key space, so keep them in different tables. The
   * words are trusted to be uint32 (this is the hot path of layers built on RefTable).
   */
  findHoldKey(k0: number, k1: number, k2: number, k3: number): number {
    const hash = fidHash(k0, k1, k2, k3);
    const slot = this.#probeHold(k0, k1, k2, k3, hash);
    if (slot !== ASK_NATIVE) return slot;
    this.#loadKey(k0, k1, k2, k3, hash, 'RefTable.findHoldKey');
    return this.#found(binding.findHold(), 'RefTable.findHoldKey');
  }

  /** getHold for a key that is not a Fid; see findHoldKey. */
  getHoldKey(k0: number, k1: number, k2: number, k3: number, onCreate?: (slot: number) => void): number {
    const hash = fidHash(k0, k1, k2, k3);
    const slot = this.#probeHold(k0, k1, k2, k3, hash);
    if (slot >= 0) {
      scratch[ScratchWord.Created] = 0;
      return slot;
    }
    this.#loadKey(k0, k1, k2, k3, hash, 'RefTable.getHoldKey');
    return this.#created(binding.getHold(), onCreate);
  }

  /**
   * For keys that must die with their last holder: if the entry at `slot` still names
   * this key and nobody holds it, removes it (no lookup finds it again) and frees its
   * slot. True if it removed it. Call it after your release; a lookup that holds the
   * entry again first wins, and only one of several removers succeeds.
   */
  removeIfIdleKey(slot: number, k0: number, k1: number, k2: number, k3: number): boolean {
    if (slot >>> 0 !== slot) checkUint32(slot, 'slot');
    this.#loadKey(k0, k1, k2, k3, fidHash(k0, k1, k2, k3), 'RefTable.removeIfIdleKey');
    return binding.removeIfIdle(slot);
  }

  /**
   * Rebuilds a table from names that outlived it (a cache file's records): `slot` names
   * the key, idle, or held by one disowned reference. Only before anyone holds from the
   * table, in ascending slot order. False (nothing changed) for a key the table already
   * has or a slot out of order: the caller drops that record.
   */
  restoreKey(slot: number, k0: number, k1: number, k2: number, k3: number, disowned: boolean): boolean {
    checkUint32(slot, 'slot');
    this.#loadKey(k0 >>> 0, k1 >>> 0, k2 >>> 0, k3 >>> 0, fidHash(k0 >>> 0, k1 >>> 0, k2 >>> 0, k3 >>> 0), 'RefTable.restoreKey');
    const status = binding.restore(slot, disowned);
    if (status === addon.status.ok) return true;
    if (status === addon.status.badArgument || status === addon.status.badSlot) return false;
    throw statusError(status, 'RefTable.restoreKey');
  }

  /**
   * Whether the last getHold or getHoldKey on this thread created its entry (the slot
   * names that key for the first time). The allocation-free form of `onCreate`.
   */
  get created(): boolean {
    return scratch[ScratchWord.Created] === 1;
  }

  /** Adds a reference to an entry that is held (by this holder or another). */
  hold(slot: number): void {
    const counts = this.#counts;
    const mine = counts[slot];
    // Our own count > 0 keeps the entry, so raising it needs nobody else.
    if (LIGHT && mine !== undefined && mine > 0 && (slot | 0) === slot) {
      counts[slot] = mine + 1;
      return;
    }
    this.#bySlot(slot, 'RefTable.hold', binding.hold);
  }

  /**
   * Drops one of this holder's references. Each holder releases only what it took (or
   * what was disowned, with releaseDisowned): what a thread still holds when it exits is
   * released for it.
   */
  release(slot: number): void {
    const counts = this.#counts;
    const mine = counts[slot];
    if (LIGHT && mine !== undefined && mine > 0 && (slot | 0) === slot && this.#index[CLOSED] === 0) {
      // A release (see LIGHT): what we did with the entry happens before a recycler
      // sees zero.
      counts[slot] = mine - 1;
      return;
    }
    this.#bySlot(slot, 'RefTable.release', binding.release);
  }

  /**
   * Hands one of this holder's references to shared state. The count is unchanged, but
   * the reference no longer belongs to this thread: when the thread exits (or is
   * terminated) it is not released, and any thread may drop it with releaseDisowned.
   * For references that outlive the operation that took them, such as a cache's dirty
   * buffers.
   */
  disown(slot: number): void {
    this.#bySlot(slot, 'RefTable.disown', binding.disown);
  }

  /** Drops a reference that was disowned, from any thread. */
  releaseDisowned(slot: number): void {
    this.#bySlot(slot, 'RefTable.releaseDisowned', binding.releaseDisowned);
  }

  /** findHold for many Fids at once. out[i] is a slot or -1. */
  findHoldMany(fids: readonly Fid[], out: Int32Array = new Int32Array(fids.length)): Int32Array {
    if (!Array.isArray(fids)) throw invalidArgType('fids', 'an array of Fid', fids);
    if (!(out instanceof Int32Array) || out.length !== fids.length) {
      throw invalidArgType('out', 'an Int32Array as long as fids', out);
    }
    const words = new Uint32Array(fids.length * 5);
    for (let i = 0; i < fids.length; i++) {
      const fid = checkFid(fids[i], `fids[${i}]`);
      words[i * 5] = fid.cell;
      words[i * 5 + 1] = fid.volume;
      words[i * 5 + 2] = fid.vnode;
      words[i * 5 + 3] = fid.unique;
      words[i * 5 + 4] = fid.hash;
    }
    this.#select('RefTable.findHoldMany');
    binding.findHoldMany(words, out);
    for (let i = 0; i < out.length; i++) if (out[i] === NOT_FOUND) out[i] = -1;
    return out;
  }

  /** Releases every slot in order; stops with an error at the first bad one. */
  releaseMany(slots: Int32Array | readonly number[]): void {
    const batch = slots instanceof Int32Array ? slots : Int32Array.from(slots);
    this.#select('RefTable.releaseMany');
    binding.releaseMany(batch);
  }

  /** The count of one entry: every holder's references and the disowned ones. */
  refCount(slot: number): number {
    this.#select('RefTable.refCount');
    return binding.refCount(slot);
  }

  /** The Fid a slot names, or undefined for a slot never used. */
  fidAt(slot: number): Fid | undefined {
    this.#select('RefTable.fidAt');
    if (!binding.fidAt(slot)) return undefined;
    return new Fid(
      scratch[ScratchWord.Cell]!,
      scratch[ScratchWord.Volume]!,
      scratch[ScratchWord.Vnode]!,
      scratch[ScratchWord.Unique]!,
    );
  }

  stats(): RefTableStats {
    this.#select('RefTable.stats');
    return binding.stats();
  }

  /** Forgets the table on this thread only (and this holder's references); other threads keep using it. */
  detach(): void {
    if (this.#closed) return;
    this.#leave();
    binding.detach(this.#local, false);
  }

  /** Closes the table for every thread; its memory goes when the last thread detaches. */
  close(): void {
    if (this.#closed) return;
    this.#leave();
    binding.detach(this.#local, true);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The reader's side of the invariant in native/core/ref_table.h: a stable seq before
   * the probe, our count raised, and the same seq after it. Returns the slot held, -1
   * for no entry, or ASK_NATIVE when a writer kept the index busy or the table closed.
   */
  #probeHold(c: number, v: number, n: number, u: number, h: number): number {
    if (!LIGHT) return ASK_NATIVE;
    const index = this.#index;
    const capacity = this.#capacity;
    for (let attempt = 0; attempt < PROBE_ATTEMPTS; attempt++) {
      const s0 = index[SEQ]!;
      if ((s0 & 1) !== 0 || index[CLOSED] !== 0) return ASK_NATIVE;
      let found = -1;
      let e = 0;
      // Bounded, so that a chain torn by a writer cannot loop; a torn read is caught
      // by the seq check below.
      let slot = index[BUCKETS + (h & this.#mask)]!;
      for (let steps = capacity; slot >= 0 && slot < capacity && steps > 0; steps--) {
        e = this.#entries + slot * ENTRY;
        if (index[e + HASH] === (h | 0) && index[e + VNODE] === (n | 0) && index[e + UNIQUE] === (u | 0) &&
            index[e + VOLUME] === (v | 0) && index[e + CELL] === (c | 0)) {
          found = slot;
          break;
        }
        slot = index[e + NEXT]!;
      }
      if (found >= 0) {
        const counts = this.#counts;
        const mine = counts[found]!;
        counts[found] = mine + 1;
        if (index[SEQ] === s0) {
          if (index[e + REFERENCED] === 0) index[e + REFERENCED] = 1;
          return found;
        }
        counts[found] = mine;
      } else if (index[SEQ] === s0) {
        return -1;
      }
    }
    return ASK_NATIVE;
  }

  #found(result: number, what: string): number {
    if (result >= 0) return result;
    if (result === NOT_FOUND) return -1;
    throw statusError(result, what);
  }

  #created(result: number, onCreate: ((slot: number) => void) | undefined): number {
    if (result < 0) throw statusError(result, 'RefTable.getHold');
    if (onCreate !== undefined && scratch[ScratchWord.Created] === 1) onCreate(result);
    return result;
  }

  /** The native form of a call by slot, which also says precisely what is wrong. */
  #bySlot(slot: number, what: string, call: (slot: number) => number): void {
    if (slot >>> 0 !== slot) checkUint32(slot, 'slot');
    this.#select(what);
    const status = call(slot);
    if (status !== 0) throw statusError(status, what);
  }

  #leave(): void {
    this.#closed = true;
    this.#index = CLOSED_INDEX;
    this.#counts = NO_COUNTS;
  }

  #select(what: string): void {
    if (this.#closed) throw typeError('ERR_CMKIT_CLOSED', `${what}: the RefTable is closed`);
    scratch[ScratchWord.Table] = this.#local;
  }

  #loadFid(fid: Fid, what: string): void {
    if (!(fid instanceof Fid)) throw invalidArgType('fid', 'an instance of Fid', fid);
    this.#select(what);
    scratch[ScratchWord.Cell] = fid.cell;
    scratch[ScratchWord.Volume] = fid.volume;
    scratch[ScratchWord.Vnode] = fid.vnode;
    scratch[ScratchWord.Unique] = fid.unique;
    scratch[ScratchWord.Hash] = fid.hash;
  }

  #loadKey(k0: number, k1: number, k2: number, k3: number, hash: number, what: string): void {
    this.#select(what);
    scratch[ScratchWord.Cell] = k0;
    scratch[ScratchWord.Volume] = k1;
    scratch[ScratchWord.Vnode] = k2;
    scratch[ScratchWord.Unique] = k3;
    scratch[ScratchWord.Hash] = hash;
  }
}
