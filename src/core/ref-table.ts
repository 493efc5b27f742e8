import { invalidArgType, typeError } from './errors.js';
import { Fid, checkFid, fidHash } from './fid.js';
import { addon, scratch, ScratchWord } from './native.js';
import { checkInteger, checkObject, checkUint32 } from './validate.js';

const binding = addon.refTable;
const NOT_FOUND = addon.status.notFound;

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
 * A process-wide table of Fid entries with atomic reference counts, shared by every
 * thread. Each entry has a slot: a small integer, stable while the entry names its Fid,
 * that later layers use to index their shared-memory records.
 *
 * Lookups take only a shared lock striped per thread; holds and releases are atomic
 * adds. An entry whose count drops to zero stays findable until the table needs its
 * slot for another Fid.
 *
 * Each thread has its own RefTable object for the same table: construct on one thread,
 * pass `descriptor` to the others, and `RefTable.attach` it there.
 */
export class RefTable {
  /** The largest capacity a table may have. */
  static readonly maxCapacity: number = binding.maxCapacity;

  readonly #id: number;
  readonly #local: number;
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
    this.#local = binding.attach(this.#id);
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
    this.#loadFid(fid, 'RefTable.findHold');
    const slot = binding.findHold();
    return slot === NOT_FOUND ? -1 : slot;
  }

  /**
   * findHold as the cache manager did it before 2008: lookup and count change under the
   * table's exclusive lock. Kept only as the benchmark's baseline (row B2); use findHold.
   */
  findHoldExclusive(fid: Fid): number {
    this.#loadFid(fid, 'RefTable.findHoldExclusive');
    const slot = binding.findHoldExclusive();
    return slot === NOT_FOUND ? -1 : slot;
  }

  /**
   * Finds or creates the entry for fid and adds a reference; returns its slot.
   * `onCreate(slot)` runs when the slot now names fid for the first time (new, or
   * recycled from another Fid), before any other thread can find it through this call.
   */
  getHold(fid: Fid, onCreate?: (slot: number) => void): number {
    this.#loadFid(fid, 'RefTable.getHold');
    const slot = binding.getHold();
    if (onCreate !== undefined && scratch[ScratchWord.Created] === 1) onCreate(slot);
    return slot;
  }

  /**
   * findHold for a key that is not a Fid: any four unsigned 32-bit words, hashed as a
   * Fid is. Keys and Fids share one key space, so keep them in different tables. The
   * words are trusted to be uint32 (this is the hot path of layers built on RefTable).
   */
  findHoldKey(k0: number, k1: number, k2: number, k3: number): number {
    this.#loadKey(k0, k1, k2, k3, 'RefTable.findHoldKey');
    const slot = binding.findHold();
    return slot === NOT_FOUND ? -1 : slot;
  }

  /** getHold for a key that is not a Fid; see findHoldKey. */
  getHoldKey(k0: number, k1: number, k2: number, k3: number, onCreate?: (slot: number) => void): number {
    this.#loadKey(k0, k1, k2, k3, 'RefTable.getHoldKey');
    const slot = binding.getHold();
    if (onCreate !== undefined && scratch[ScratchWord.Created] === 1) onCreate(slot);
    return slot;
  }

  /**
   * For keys that must die with their last holder: if the entry at `slot` still names
   * this key and nobody holds it, removes it (no lookup finds it again) and frees its
   * slot. True if it removed it. Call it after your release; a lookup that holds the
   * entry again first wins, and only one of several removers succeeds.
   */
  removeIfIdleKey(slot: number, k0: number, k1: number, k2: number, k3: number): boolean {
    if (slot >>> 0 !== slot) checkUint32(slot, 'slot');
    this.#loadKey(k0, k1, k2, k3, 'RefTable.removeIfIdleKey');
    return binding.removeIfIdle(slot);
  }

  /**
   * Whether the last getHold or getHoldKey on this thread created its entry (the slot
   * names that key for the first time). The allocation-free form of `onCreate`.
   */
  get created(): boolean {
    return scratch[ScratchWord.Created] === 1;
  }

  /** Adds a reference to an entry the caller already holds. */
  hold(slot: number): void {
    if (slot >>> 0 !== slot) checkUint32(slot, 'slot');
    this.#select('RefTable.hold');
    binding.hold(slot);
  }

  /**
   * Drops one of this thread's references. Each thread releases only what it took (or
   * what was disowned, with releaseDisowned): what a thread still holds when it exits is
   * released for it.
   */
  release(slot: number): void {
    // The binding checks only the type on this hot path; the range is checked here.
    if (slot >>> 0 !== slot) checkUint32(slot, 'slot');
    this.#select('RefTable.release');
    binding.release(slot);
  }

  /**
   * Hands one of this thread's references to shared state. The count is unchanged, but
   * the reference no longer belongs to this thread: when the thread exits (or is
   * terminated) it is not released, and any thread may drop it with releaseDisowned.
   * For references that outlive the operation that took them, such as a cache's dirty
   * buffers.
   */
  disown(slot: number): void {
    if (slot >>> 0 !== slot) checkUint32(slot, 'slot');
    this.#select('RefTable.disown');
    binding.disown(slot);
  }

  /** Drops a reference that was disowned, from any thread. */
  releaseDisowned(slot: number): void {
    if (slot >>> 0 !== slot) checkUint32(slot, 'slot');
    this.#select('RefTable.releaseDisowned');
    binding.releaseDisowned(slot);
  }

  /** findHold for many Fids under one lock acquisition. out[i] is a slot or -1. */
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

  /** Forgets the table on this thread only; other threads keep using it. */
  detach(): void {
    if (this.#closed) return;
    this.#closed = true;
    binding.detach(this.#local, false);
  }

  /** Closes the table for every thread; its memory goes when the last thread detaches. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    binding.detach(this.#local, true);
  }

  get closed(): boolean {
    return this.#closed;
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

  #loadKey(k0: number, k1: number, k2: number, k3: number, what: string): void {
    this.#select(what);
    scratch[ScratchWord.Cell] = k0;
    scratch[ScratchWord.Volume] = k1;
    scratch[ScratchWord.Vnode] = k2;
    scratch[ScratchWord.Unique] = k3;
    scratch[ScratchWord.Hash] = fidHash(k0, k1, k2, k3);
  }
}
