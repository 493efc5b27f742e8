/**
 * PAGs (process authentication groups): the unit a file-system client authenticates
 * by. A login makes a PAG; the processes of that session share it; it holds one token
 * per cell. Shared by every thread, on a RefTable keyed by PAG id.
 *
 * Lifetime: a PAG lives while it has holders, and is destroyed (removed from the table,
 * its slot free for the next login) when the last one logs out, whatever its tokens'
 * expiry. A host that kept PAGs until their tokens expired (25 hours, or days) held
 * every PAG of every login in that window; at 30,000 logins a day, making a new one got
 * slower and slower. Here creating one costs the same after 10^6 logins as after 10.
 *
 * Ids are never reused (a 32-bit counter: 4 billion logins), so a stale id names nothing
 * rather than someone else's PAG.
 *
 * Record of a slot (Int32 view, RECORD_I32 words; Float64 view, RECORD_F64 words):
 *   i32[0]       pag id, written last when a slot is set up (a reader that finds the
 *                entry first waits for it, as with vnodes)
 *   i32[1]       token seqlock: odd while a writer changes the tokens
 *   f64[4k..4k+3] token k (k < MAX_TOKENS): cell, userId, expiresAt, renewUntil (ms
 *                since the epoch); expiresAt 0 = no token
 */
import { invalidArgType, outOfRange, typeError } from '../core/errors.js';
import { RefTable, type RefTableDescriptor } from '../core/ref-table.js';
import { checkInteger, checkObject, checkUint32 } from '../core/validate.js';

/** A cell's credential held by a PAG. */
export interface Token {
  readonly cell: number;
  /** Who the cell knows the holder as (an AFS ViceId, a uid). */
  readonly userId: number;
  /** Not usable from this time on (ms since the epoch). */
  readonly expiresAt: number;
  /** Renewal may extend expiresAt up to this time, never past it. */
  readonly renewUntil: number;
}

export interface PagTableOptions {
  /** PAGs alive at once. @default 65536 */
  readonly capacity?: number;
}

export interface PagTableDescriptor {
  readonly kind: 'cmkit.PagTable';
  readonly table: RefTableDescriptor;
  readonly records: SharedArrayBuffer;
  readonly counters: SharedArrayBuffer;
}

export interface PagStats {
  /** PAGs alive now. */
  readonly live: number;
  readonly created: number;
  readonly destroyed: number;
}

export const MAX_TOKENS = 4;
export const DEFAULT_PAG_CAPACITY = 65_536;
const RECORD_BYTES = 8 + MAX_TOKENS * 32 + 8; // id, seqlock, tokens (8-aligned), pad
const RECORD_I32 = RECORD_BYTES / 4;
const RECORD_F64 = RECORD_BYTES / 8;
const TOKENS_F64 = 1; // the tokens start after the two i32 words
/** The key's first word: PAG entries never match a Fid-shaped key by accident. */
const PAG_KEY = 0x50414721;

const enum Counter {
  NextId = 0,
  Created = 1,
  Destroyed = 2,
}

export class PagTable {
  readonly #table: RefTable;
  readonly #records: SharedArrayBuffer;
  readonly #i32: Int32Array;
  readonly #f64: Float64Array;
  readonly #counters: Int32Array;
  readonly #owner: boolean;

  private constructor(table: RefTable, records: SharedArrayBuffer, counters: SharedArrayBuffer, owner: boolean) {
    this.#table = table;
    this.#records = records;
    this.#i32 = new Int32Array(records);
    this.#f64 = new Float64Array(records);
    this.#counters = new Int32Array(counters);
    this.#owner = owner;
  }

  static create(options: PagTableOptions = {}): PagTable {
    checkObject(options, 'options');
    const capacity = checkInteger(options.capacity ?? DEFAULT_PAG_CAPACITY, 'options.capacity', 1, RefTable.maxCapacity);
    const counters = new SharedArrayBuffer(16);
    new Int32Array(counters)[Counter.NextId] = 1;
    return new PagTable(new RefTable({ capacity }), new SharedArrayBuffer(capacity * RECORD_BYTES), counters, true);
  }

  static attach(descriptor: PagTableDescriptor): PagTable {
    checkObject(descriptor, 'descriptor');
    if (descriptor.kind !== 'cmkit.PagTable') throw invalidArgType('descriptor', 'a PagTable descriptor', descriptor);
    return new PagTable(RefTable.attach(descriptor.table), descriptor.records, descriptor.counters, false);
  }

  get descriptor(): PagTableDescriptor {
    return { kind: 'cmkit.PagTable', table: this.#table.descriptor, records: this.#records, counters: this.#counters.buffer as SharedArrayBuffer };
  }

  /** A new PAG with no tokens, held once by the session that logged in. */
  login(): number {
    const id = Atomics.add(this.#counters, Counter.NextId, 1) >>> 0;
    if (id === 0) throw outOfRange('pag', 'fewer than 2^32 PAGs ever created', id);
    const slot = this.#table.getHoldKey(PAG_KEY, id, 0, 0, (s) => this.#initRecord(s, id));
    // The session's reference belongs to no thread: a session outlives the worker that
    // logged it in, and ends only at logout.
    this.#table.disown(slot);
    Atomics.add(this.#counters, Counter.Created, 1);
    return id;
  }

  /** Another holder of a live PAG (a process joining the session); logout() it too. */
  hold(pag: number): void {
    const slot = this.#find(pag, 'hold');
    this.#table.disown(slot);
  }

  /** Drops one holder; the last one destroys the PAG. True if it was destroyed. */
  logout(pag: number): boolean {
    const slot = this.#find(pag, 'logout');
    this.#table.release(slot);
    try {
      this.#table.releaseDisowned(slot);
    } catch (e) {
      this.#destroyIfUnheld(slot, pag); // more logouts than holders: ours may have been the last hold
      throw e;
    }
    return this.#destroyIfUnheld(slot, pag);
  }

  /** Whether `pag` names a live PAG. */
  isAlive(pag: number): boolean {
    checkUint32(pag, 'pag');
    const slot = this.#lookup(pag);
    if (slot < 0) return false;
    this.#drop(slot, pag);
    return true;
  }

  /** Sets (or replaces) the PAG's token for `token.cell`. */
  setToken(pag: number, token: Token): void {
    checkToken(token);
    this.#withRecord(pag, 'setToken', (slot) => {
      this.#writeTokens(slot, (f) => {
        let k = this.#tokenIndex(f, token.cell);
        if (k < 0) k = this.#tokenIndex(f, undefined);
        if (k < 0) throw outOfRange('token', `one of at most ${MAX_TOKENS} cells per PAG`, token.cell);
        this.#f64.set([token.cell, token.userId, token.expiresAt, token.renewUntil], f + 4 * k);
      });
    });
  }

  /** Drops the PAG's token for `cell`, if any: its user is anonymous there. */
  dropToken(pag: number, cell: number): void {
    checkUint32(cell, 'cell');
    this.#withRecord(pag, 'dropToken', (slot) => {
      this.#writeTokens(slot, (f) => {
        const k = this.#tokenIndex(f, cell);
        if (k >= 0) this.#f64[f + 4 * k + 2] = 0;
      });
    });
  }

  /**
   * The token `pag` may use in `cell` at time `now`: undefined if it has none, or if
   * the one it has expired (an expired token is never used).
   */
  token(pag: number, cell: number, now: number = Date.now()): Token | undefined {
    checkUint32(cell, 'cell');
    const t = this.tokens(pag).find((x) => x.cell === cell);
    return t !== undefined && now < t.expiresAt ? t : undefined;
  }

  /** Every token the PAG holds, usable or not. */
  tokens(pag: number): Token[] {
    return this.#withRecord(pag, 'tokens', (slot) => this.#readTokens(slot));
  }

  /** The ids of the live PAGs. */
  livePags(): number[] {
    const out: number[] = [];
    const used = this.#table.stats().used;
    for (let slot = 0; slot < used; slot++) {
      const id = Atomics.load(this.#i32, slot * RECORD_I32) >>> 0;
      if (id !== 0 && this.#table.refCount(slot) > 0) out.push(id);
    }
    return out;
  }

  stats(): PagStats {
    const t = this.#table.stats();
    return {
      live: t.used - t.free,
      created: Atomics.load(this.#counters, Counter.Created) >>> 0,
      destroyed: Atomics.load(this.#counters, Counter.Destroyed) >>> 0,
    };
  }

  /** Leaves the table on this thread; on the creating thread, closes it for all. */
  close(): void {
    if (this.#owner) this.#table.close();
    else this.#table.detach();
  }

  #initRecord(slot: number, id: number): void {
    const r = slot * RECORD_I32;
    Atomics.store(this.#i32, r, 0);
    Atomics.store(this.#i32, r + 1, 0);
    this.#f64.fill(0, slot * RECORD_F64 + TOKENS_F64, slot * RECORD_F64 + TOKENS_F64 + 4 * MAX_TOKENS);
    Atomics.store(this.#i32, r, id | 0);
  }

  /** Holds pag's entry, waiting out a record still being set up; -1 if there is none. */
  #lookup(pag: number): number {
    const slot = this.#table.findHoldKey(PAG_KEY, pag, 0, 0);
    if (slot < 0) return -1;
    // Setup is a few stores by the thread that created it; spinning beats any wait.
    while (Atomics.load(this.#i32, slot * RECORD_I32) >>> 0 !== pag);
    return slot;
  }

  #find(pag: number, what: string): number {
    checkUint32(pag, 'pag');
    const slot = this.#lookup(pag);
    if (slot < 0) throw typeError('ERR_CMKIT_NO_SUCH_PAG', `PagTable.${what}: PAG ${pag} does not exist (logged out, or never made)`);
    return slot;
  }

  #withRecord<T>(pag: number, what: string, fn: (slot: number) => T): T {
    const slot = this.#find(pag, what);
    try {
      return fn(slot);
    } finally {
      this.#drop(slot, pag);
    }
  }

  /** Releases a lookup's hold; if that was the last hold (every session logged out meanwhile), the PAG goes. */
  #drop(slot: number, pag: number): void {
    this.#table.release(slot);
    this.#destroyIfUnheld(slot, pag);
  }

  #destroyIfUnheld(slot: number, pag: number): boolean {
    if (this.#table.refCount(slot) !== 0) return false;
    if (!this.#table.removeIfIdleKey(slot, PAG_KEY, pag, 0, 0)) return false;
    Atomics.add(this.#counters, Counter.Destroyed, 1);
    return true;
  }

  #tokenIndex(f: number, cell: number | undefined): number {
    for (let k = 0; k < MAX_TOKENS; k++) {
      const present = this.#f64[f + 4 * k + 2]! > 0;
      if (cell === undefined ? !present : present && this.#f64[f + 4 * k] === cell) return k;
    }
    return -1;
  }

  /** A seqlock write: writers exclude each other; readers retry around them. */
  #writeTokens(slot: number, fn: (f: number) => void): void {
    const seq = slot * RECORD_I32 + 1;
    for (;;) {
      const s = Atomics.load(this.#i32, seq);
      if ((s & 1) === 0 && Atomics.compareExchange(this.#i32, seq, s, s + 1) === s) break;
    }
    try {
      fn(slot * RECORD_F64 + TOKENS_F64);
    } finally {
      Atomics.add(this.#i32, seq, 1);
    }
  }

  #readTokens(slot: number): Token[] {
    const seq = slot * RECORD_I32 + 1;
    const f = slot * RECORD_F64 + TOKENS_F64;
    for (;;) {
      const before = Atomics.load(this.#i32, seq);
      if ((before & 1) !== 0) continue;
      const out: Token[] = [];
      for (let k = 0; k < MAX_TOKENS; k++) {
        const b = f + 4 * k;
        if (this.#f64[b + 2]! > 0) out.push({ cell: this.#f64[b]!, userId: this.#f64[b + 1]!, expiresAt: this.#f64[b + 2]!, renewUntil: this.#f64[b + 3]! });
      }
      if (Atomics.load(this.#i32, seq) === before) return out;
    }
  }
}

function checkToken(token: unknown): asserts token is Token {
  checkObject(token, 'token');
  const t = token as Partial<Record<keyof Token, unknown>>;
  checkUint32(t.cell, 'token.cell');
  checkUint32(t.userId, 'token.userId');
  if (typeof t.expiresAt !== 'number' || !(t.expiresAt > 0) || !Number.isFinite(t.expiresAt)) {
    throw outOfRange('token.expiresAt', 'a time in ms since the epoch', t.expiresAt);
  }
  if (typeof t.renewUntil !== 'number' || !(t.renewUntil >= t.expiresAt) || !Number.isFinite(t.renewUntil)) {
    throw outOfRange('token.renewUntil', 'a time >= token.expiresAt', t.renewUntil);
  }
}
