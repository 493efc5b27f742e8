/**
 * A backing directory reached only through a held descriptor of its root, never by a
 * path string the kernel resolves from `/`: the typed face of native/core/backing_dir.h
 * (its header states the rules: nothing beneath the root is followed if it is a symlink,
 * nothing outside it is reachable, creates get the requester's owner and exact mode).
 *
 * Paths are byte strings: each char is one byte of the name (latin1, as
 * `Buffer.toString('latin1')` gives), components separated by '/', '' for the root. So
 * a name that is not UTF-8 (any byte but '/' and NUL) goes through unchanged.
 * `bytePath()` turns an ordinary (UTF-8) string into one.
 *
 * Open descriptors of regular files are plain numbers for node:fs's fd calls.
 */
import { close, fdatasync, fstat, ftruncate, open, read, write, type BigIntStats } from 'node:fs';
import { promisify } from 'node:util';

import { addon } from '../core/native.js';
import { outOfRange } from '../core/errors.js';

const native = addon.backing;
const WORDS = native.attrWords;

export interface Time {
  readonly sec: number;
  readonly nsec: number;
}

export interface BackingAttr {
  readonly dev: number;
  /** The inode number; inoHigh is its upper 32 bits (inode numbers may exceed 2^53). */
  readonly ino: number;
  readonly inoHigh: number;
  readonly mode: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly rdev: number;
  readonly size: number;
  readonly blocks: number;
  readonly atime: Time;
  readonly mtime: Time;
  readonly ctime: Time;
  /** Birth time; {0, 0} where the file system keeps none. */
  readonly btime: Time;
}

/** setattr's changes; absent fields stay. `'now'` is the server's clock. */
export interface BackingChange {
  readonly uid?: number | undefined;
  readonly gid?: number | undefined;
  readonly mode?: number | undefined;
  readonly atime?: Time | 'now' | undefined;
  readonly mtime?: Time | 'now' | undefined;
}

const UTIME_NOW = 2 ** 30 - 1;
const UTIME_OMIT = 2 ** 30 - 2;

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;

/** A UTF-8 string as a byte string. */
export function bytePath(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}

/** Refuses what is not a path beneath the root: a RangeError naming `name`. */
export function checkBytePath(p: string, name: string): void {
  if (p === '') return;
  for (const c of p.split('/')) {
    if (c === '' || c === '.' || c === '..' || c.includes('\0')) throw outOfRange(name, 'a path inside the backing directory', p);
  }
  // eslint-disable-next-line no-control-regex
  if (/[^\u0000-\u00ff]/.test(p)) throw outOfRange(name, 'a byte string (one char per byte: bytePath() makes one)', p);
}

function attrAt(w: Float64Array, i: number): BackingAttr {
  const o = i * WORDS;
  return {
    dev: w[o]!,
    ino: w[o + 2]! * 2 ** 32 + w[o + 1]!,
    inoHigh: w[o + 2]!,
    mode: w[o + 3]!,
    nlink: w[o + 4]!,
    uid: w[o + 5]!,
    gid: w[o + 6]!,
    rdev: w[o + 7]!,
    size: w[o + 8]!,
    blocks: w[o + 9]!,
    atime: { sec: w[o + 10]!, nsec: w[o + 11]! },
    mtime: { sec: w[o + 12]!, nsec: w[o + 13]! },
    ctime: { sec: w[o + 14]!, nsec: w[o + 15]! },
    btime: { sec: w[o + 16]!, nsec: w[o + 17]! },
  };
}

function timeWords(t: Time | 'now' | undefined): [number, number] {
  if (t === undefined) return [0, UTIME_OMIT];
  if (t === 'now') return [0, UTIME_NOW];
  return [t.sec, t.nsec];
}

function changeWords(c: BackingChange): Float64Array {
  const which = (c.uid !== undefined ? 1 : 0) | (c.gid !== undefined ? 2 : 0) | (c.mode !== undefined ? 4 : 0);
  return new Float64Array([which, c.uid ?? 0, c.gid ?? 0, c.mode ?? 0, ...timeWords(c.atime), ...timeWords(c.mtime)]);
}

export interface DirEntryAttr {
  readonly name: string;
  readonly attr: BackingAttr;
}

/** The backing directory at `root`, opened once; every call goes through its descriptor. */
export class BackingDir {
  readonly #root: number;

  constructor(rootPath: string) {
    const fd = native.openRoot(rootPath);
    if (fd < 0) {
      throw Object.assign(new Error(`${rootPath}: cannot open the backing directory (errno ${-fd})`), { errno: fd, code: 'ERR_CMKIT_BACKING' });
    }
    this.#root = fd;
  }

  close(): void {
    close(this.#root, () => {});
  }

  async lstat(p: string): Promise<BackingAttr> {
    return attrAt(await native.lstat(this.#root, p), 0);
  }

  /** A regular file's descriptor (creating it, owned by uid/gid with `mode`, with O_CREAT). */
  openFile(p: string, flags: number, mode = 0, uid = 0, gid = 0): Promise<number> {
    return native.openFile(this.#root, p, flags, mode, uid, gid);
  }

  async mkdir(p: string, mode: number, uid: number, gid: number): Promise<BackingAttr> {
    return attrAt(await native.mkdir(this.#root, p, mode, uid, gid), 0);
  }

  async mknod(p: string, mode: number, rdev: number, uid: number, gid: number): Promise<BackingAttr> {
    return attrAt(await native.mknod(this.#root, p, mode, rdev, uid, gid), 0);
  }

  async symlink(target: string, p: string, uid: number, gid: number): Promise<BackingAttr> {
    return attrAt(await native.symlink(this.#root, target, p, uid, gid), 0);
  }

  readlink(p: string): Promise<string> {
    return native.readlink(this.#root, p);
  }

  async link(from: string, to: string): Promise<BackingAttr> {
    return attrAt(await native.link(this.#root, from, to), 0);
  }

  unlink(p: string): Promise<void> {
    return native.unlink(this.#root, p, false);
  }

  rmdir(p: string): Promise<void> {
    return native.unlink(this.#root, p, true);
  }

  /** flags: RENAME_NOREPLACE (1), RENAME_EXCHANGE (2). */
  rename(from: string, to: string, flags = 0): Promise<void> {
    return native.rename(this.#root, from, to, flags);
  }

  async setattr(p: string, c: BackingChange): Promise<BackingAttr> {
    return attrAt(await native.setattr(this.#root, p, changeWords(c)), 0);
  }

  /** The attributes of the file an open descriptor holds, whatever became of its names. */
  async attrOfOpen(h: number): Promise<BackingAttr> {
    return attrAt(await native.lstat(h, ''), 0);
  }

  /** setattr on the file an open descriptor holds. */
  async setattrOfOpen(h: number, c: BackingChange): Promise<BackingAttr> {
    return attrAt(await native.setattr(h, '', changeWords(c)), 0);
  }

  async readdirPlus(p: string): Promise<DirEntryAttr[]> {
    const { names, attrs } = await native.readdirPlus(this.#root, p);
    return names.map((name, i) => ({ name, attr: attrAt(attrs, i) }));
  }

  async statfs(): Promise<{ bsize: number; blocks: number; bfree: number; bavail: number; files: number; ffree: number; namemax: number }> {
    const s = await native.statfs(this.#root);
    return { bsize: s[0]!, blocks: s[1]!, bfree: s[2]!, bavail: s[3]!, files: s[4]!, ffree: s[5]!, namemax: s[6]! };
  }

  /** The file system's largest file size, or undefined where it cannot be probed. */
  maxFileSize(): Promise<number | undefined> {
    return native.maxFileSize(this.#root).then(
      (n) => n,
      () => undefined,
    );
  }
}

/** node:fs's descriptor calls, as promises. */
export const fd = {
  read: promisify(read) as (fd: number, buffer: Uint8Array, offset: number, length: number, position: number) => Promise<{ bytesRead: number }>,
  /** Resolves with the bytes written. */
  write: (f: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> =>
    new Promise((resolve, reject) => write(f, buffer, offset, length, position, (e, n) => (e ? reject(e) : resolve(n)))),
  fstat: (f: number): Promise<BigIntStats> => promisify(fstat)(f, { bigint: true }) as Promise<BigIntStats>,
  ftruncate: promisify(ftruncate),
  fdatasync: promisify(fdatasync),
  close: promisify(close),
  /**
   * A new descriptor of the file `h` holds, with `flags` (the /proc magic link names that
   * inode even once it has no name left; nothing a user can change is resolved).
   */
  reopen: (h: number, flags: number): Promise<number> =>
    new Promise((resolve, reject) => open(`/proc/self/fd/${h}`, flags, (e, f) => (e ? reject(e) : resolve(f)))),
};
