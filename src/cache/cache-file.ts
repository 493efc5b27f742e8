/**
 * The cache file (CacheManagerOptions.cacheFile): the cache's records and data blocks in
 * a file mapped shared into the process, so the cache may be bigger than memory (the
 * kernel pages it) and outlives the process (what it wrote is in the file's pages, even
 * after a kill -9). Every thread's views are SharedArrayBuffers over the one mapping.
 *
 * Layout, each region starting on a page:
 *
 * | region   | bytes                 | what                                             |
 * |----------|-----------------------|--------------------------------------------------|
 * | header   | 4096                  | u32 words: magic 'cmkc' 'file', format, block    |
 * |          |                       | size, buffers, maxVnodes, generation, checksum   |
 * |          |                       | of the words before generation                   |
 * | vnodes   | maxVnodes * 128       | vnode records (layout.ts)                        |
 * | headers  | buffers * 40          | buffer headers                                   |
 * | versions | buffers * 8           | buffer versions                                  |
 * | seals    | buffers * 4           | block seals (seal.ts)                            |
 * | data     | buffers * blockSize   | the blocks                                       |
 *
 * Not in the file: the stats (they count this cache's work), the access cache and the
 * RefTables, which recover.ts rebuilds from the records.
 *
 * A new file is created 0600 (it holds other users' data), sparse, and its header is
 * written magic last: a file whose magic is zero is new, whatever else it holds. A file of
 * another geometry, format or not a cache file at all is refused, never overwritten.
 */

import fs from 'node:fs';

import { outOfRange } from '../core/errors.js';
import { fidHash } from '../core/fid.js';
import { addon } from '../core/native.js';
import { HEADER_BYTES, VNODE_BYTES, allocateStats, clearVnodeIdentities, type SharedCacheMemory } from './layout.js';

export const CACHE_FILE_FORMAT = 1;
const PAGE = 4096;
const MAGIC0 = 0x636b6d63; // 'cmkc', little-endian
const MAGIC1 = 0x656c6966; // 'file'
const enum Word {
  Magic0,
  Magic1,
  Format,
  BlockSize,
  Buffers,
  MaxVnodes,
  Generation,
  Checksum,
}
const HEADER_WORDS = 8;

export interface CacheFileGeometry {
  readonly blockSize: number;
  readonly buffers: number;
  readonly maxVnodes: number;
}

export interface OpenedCacheFile {
  readonly memory: SharedCacheMemory;
  /** False for a new file: nothing to recover. */
  readonly existed: boolean;
  /** How many caches have opened the file, this one included. */
  readonly generation: number;
  /** Lets the file go (another cache may open it); the mapping stays for the views. */
  readonly unlock: () => void;
  /** Starts the kernel reading blocks [slot, slot + count) in, without waiting for it. */
  readonly willNeed: (slot: number, count: number) => void;
}

const roundUp = (n: number): number => Math.ceil(n / PAGE) * PAGE;

/** Over the words that never change once written; the generation is not among them. */
function headerChecksum(w: Uint32Array): number {
  return fidHash(fidHash(w[0]!, w[1]!, w[2]!, w[3]!), w[4]!, w[5]!, 0) >>> 0;
}

/** The first page of the file, or undefined if there is none yet (or it is empty). */
function readFirstPage(path: string): Uint32Array | undefined {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw cacheFileError(path, e as NodeJS.ErrnoException);
  }
  try {
    const page = new Uint32Array(PAGE / 4);
    const n = fs.readSync(fd, page, 0, PAGE, 0);
    return n === 0 ? undefined : page;
  } finally {
    fs.closeSync(fd);
  }
}

function cacheFileError(path: string, e: NodeJS.ErrnoException): Error {
  const err = new Error(`options.cacheFile: cannot open '${path}': ${e.code ?? e.message}`) as NodeJS.ErrnoException;
  err.code = e.code;
  err.errno = e.errno;
  return err;
}

/** Checks what an existing file's header says against the options; throws if it cannot be used. */
function checkHeader(path: string, page: Uint32Array, g: CacheFileGeometry): 'new' | 'ours' {
  if (page[Word.Magic0] === 0 && page[Word.Magic1] === 0) return 'new'; // created, but killed before its header
  if (page[Word.Magic0] !== MAGIC0 || page[Word.Magic1] !== MAGIC1) {
    throw outOfRange('options.cacheFile', 'a cmkit cache file or a path that does not exist (refusing to overwrite another file)', path);
  }
  if (page[Word.Checksum] !== headerChecksum(page)) {
    throw outOfRange('options.cacheFile', 'a cache file with a whole header (this one is damaged: remove it)', path);
  }
  const made = { format: page[Word.Format]!, blockSize: page[Word.BlockSize]!, buffers: page[Word.Buffers]!, maxVnodes: page[Word.MaxVnodes]! };
  if (made.format !== CACHE_FILE_FORMAT || made.blockSize !== g.blockSize || made.buffers !== g.buffers || made.maxVnodes !== g.maxVnodes) {
    throw outOfRange(
      'options.cacheFile',
      `a cache file made with the same options (this one has format ${made.format}, blockSize ${made.blockSize}, ` +
        `cacheSize ${made.buffers * made.blockSize}, maxVnodes ${made.maxVnodes}; give those, or remove it)`,
      path,
    );
  }
  return 'ours';
}

export type CacheFileRegion = 'header' | 'vnodes' | 'headers' | 'versions' | 'seals' | 'data';

/** Where each region of a cache file of geometry `g` lies, and the file's size. */
export function cacheFileLayout(g: CacheFileGeometry): { regions: Record<CacheFileRegion, { offset: number; bytes: number }>; size: number } {
  const sizes: [CacheFileRegion, number][] = [
    ['header', PAGE],
    ['vnodes', g.maxVnodes * VNODE_BYTES],
    ['headers', g.buffers * HEADER_BYTES],
    ['versions', g.buffers * 8],
    ['seals', g.buffers * 4],
    ['data', g.buffers * g.blockSize],
  ];
  const regions = {} as Record<CacheFileRegion, { offset: number; bytes: number }>;
  let at = 0;
  for (const [name, bytes] of sizes) {
    regions[name] = { offset: at, bytes };
    at = roundUp(at + bytes);
  }
  return { regions, size: at };
}

/** Opens (or creates) and maps the cache file at `path` for a cache of geometry `g`. */
export function openCacheFile(path: string, g: CacheFileGeometry): OpenedCacheFile {
  const first = readFirstPage(path);
  const existed = first !== undefined && checkHeader(path, first, g) === 'ours';
  const { regions, size } = cacheFileLayout(g);
  const spans = Object.values(regions).flatMap((r) => [r.offset, r.bytes]);
  const mapped = addon.cacheFile.map(path, size, Float64Array.from(spans));
  if (typeof mapped === 'number') {
    const code = mapped === 22 ? 'EINVAL' : mapped === 11 ? 'EWOULDBLOCK' : `errno ${mapped}`;
    const why = mapped === 22 ? ' (it is not the size this cache needs)' : mapped === 11 ? ' (another process has it open)' : '';
    throw cacheFileError(path, Object.assign(new Error(code + why), { code: code + why, errno: -mapped }));
  }
  const [unlock, willNeed, header, vnodes, headers, versions, seals, data] = mapped as [() => void, (offset: number, length: number) => void, ...SharedArrayBuffer[]];
  const words = new Uint32Array(header!, 0, HEADER_WORDS);
  // Re-read under the lock: another process may have made the file in between.
  if (words[Word.Magic0] !== 0 && !existed) {
    unlock();
    return openCacheFile(path, g);
  }
  if (!existed) {
    clearVnodeIdentities(vnodes!);
    const next = Uint32Array.of(MAGIC0, MAGIC1, CACHE_FILE_FORMAT, g.blockSize, g.buffers, g.maxVnodes, 0, 0);
    next[Word.Checksum] = headerChecksum(next);
    words.set(next.subarray(Word.Format), Word.Format);
    words[Word.Magic1] = MAGIC1;
    words[Word.Magic0] = MAGIC0;
  }
  words[Word.Generation] = words[Word.Generation]! + 1;
  return {
    memory: { vnodes: vnodes!, headers: headers!, versions: versions!, data: data!, seals: seals!, stats: allocateStats() },
    existed,
    generation: words[Word.Generation]!,
    unlock,
    willNeed: (slot, count) => willNeed(regions.data.offset + slot * g.blockSize, count * g.blockSize),
  };
}
