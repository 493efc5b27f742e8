import { invalidArgType } from './errors.js';
import { checkObject, checkUint32 } from './validate.js';

/**
 * The hash of a Fid: MurmurHash3's 32-bit mix of the four words, seed 0. The same
 * function as fidHash in native/core/fid.h; a test checks that the two agree.
 */
export function fidHash(cell: number, volume: number, vnode: number, unique: number): number {
  let h = 0;
  h = mixWord(h, cell);
  h = mixWord(h, volume);
  h = mixWord(h, vnode);
  h = mixWord(h, unique);
  h ^= 16;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function mixWord(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** The fields of a Fid without its hash: what survives postMessage or JSON. */
export interface FidFields {
  readonly cell: number;
  readonly volume: number;
  readonly vnode: number;
  readonly unique: number;
}

/**
 * A file identifier: cell, volume, vnode and uniquifier, each an unsigned 32-bit
 * integer, with a hash computed once at construction. Immutable.
 */
export class Fid implements FidFields {
  readonly cell: number;
  readonly volume: number;
  readonly vnode: number;
  readonly unique: number;
  readonly hash: number;

  constructor(cell: number, volume: number, vnode: number, unique: number) {
    this.cell = checkUint32(cell, 'cell');
    this.volume = checkUint32(volume, 'volume');
    this.vnode = checkUint32(vnode, 'vnode');
    this.unique = checkUint32(unique, 'unique');
    this.hash = fidHash(cell, volume, vnode, unique);
    Object.freeze(this);
  }

  /** Rebuilds a Fid from its fields, for example after it crossed a thread boundary. */
  static from(fields: FidFields): Fid {
    checkObject(fields, 'fields');
    return new Fid(fields.cell, fields.volume, fields.vnode, fields.unique);
  }

  /** Hash first: different Fids almost never get past the first compare. */
  equals(other: Fid): boolean {
    if (!(other instanceof Fid)) throw invalidArgType('other', 'an instance of Fid', other);
    return (
      this.hash === other.hash &&
      this.vnode === other.vnode &&
      this.unique === other.unique &&
      this.volume === other.volume &&
      this.cell === other.cell
    );
  }

  toString(): string {
    return `${this.cell}.${this.volume}.${this.vnode}.${this.unique}`;
  }

  toJSON(): FidFields {
    return { cell: this.cell, volume: this.volume, vnode: this.vnode, unique: this.unique };
  }
}

export function checkFid(value: unknown, name: string): Fid {
  if (!(value instanceof Fid)) throw invalidArgType(name, 'an instance of Fid', value);
  return value;
}
