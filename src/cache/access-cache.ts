/**
 * Per vnode, the rights the server granted each PAG, so a read or write by a PAG that
 * asked before needs no RPC. An entry is used only while all of these hold:
 * - no callback break on the file since the server answered (breakSeq unchanged), so a
 *   revoked ACL is seen at the next access;
 * - the token it was granted under has not expired (validUntil), and the PAG still
 *   acts as the same user (userId);
 * - the PAG lives: PAG ids are never reused, so a destroyed PAG's entries match no one,
 *   and are overwritten as new PAGs ask.
 *
 * Shared memory, ENTRIES per vnode slot, 4 Float64 words each: pag (0 = empty), userId,
 * rights, breakSeq; and validUntil in a second array. Read under the vnode's lock in
 * either mode, written under its write lock.
 */
/** The userId of a PAG with no usable token in the file's cell. */
export const ANONYMOUS = -1;

const ENTRIES = 8;
const WORDS = 5;

export class AccessCache {
  readonly #f64: Float64Array;

  constructor(buffer: SharedArrayBuffer) {
    this.#f64 = new Float64Array(buffer);
  }

  static allocate(vnodes: number): SharedArrayBuffer {
    return new SharedArrayBuffer(vnodes * ENTRIES * WORDS * 8);
  }

  /** Forgets every entry of a vnode slot that now names another file. */
  clear(vnode: number): void {
    const base = vnode * ENTRIES * WORDS;
    for (let k = 0; k < ENTRIES; k++) this.#f64[base + k * WORDS] = 0;
  }

  /** The rights cached for `pag` acting as `userId`, if still good; else undefined. */
  lookup(vnode: number, pag: number, userId: number, breakSeq: number, now: number): number | undefined {
    const base = vnode * ENTRIES * WORDS;
    for (let k = 0; k < ENTRIES; k++) {
      const e = base + k * WORDS;
      if (this.#f64[e] !== pag) continue;
      const f = this.#f64;
      if (f[e + 1] !== userId || f[e + 3] !== breakSeq || !(now < f[e + 4]!)) return undefined;
      return f[e + 2];
    }
    return undefined;
  }

  /** Records what the server granted; `breakSeq` as read before the server was asked. */
  store(vnode: number, pag: number, userId: number, rights: number, breakSeq: number, validUntil: number): void {
    const base = vnode * ENTRIES * WORDS;
    let victim = -1;
    for (let k = 0; k < ENTRIES && victim < 0; k++) if (this.#f64[base + k * WORDS] === pag) victim = k;
    // Else an empty or stale entry, else the one hashed from the PAG id.
    for (let k = 0; k < ENTRIES && victim < 0; k++) {
      const e = base + k * WORDS;
      if (this.#f64[e] === 0 || this.#f64[e + 3] !== breakSeq) victim = k;
    }
    if (victim < 0) victim = pag % ENTRIES;
    this.#f64.set([pag, userId, rights, breakSeq, validUntil], base + victim * WORDS);
  }
}
