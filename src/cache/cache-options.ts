/**
 * CacheManager's options: each with its default, checked once when a cache is created
 * (a thread that attaches takes them from the descriptor).
 */

import { constants as bufferConstants } from 'node:buffer';
import os from 'node:os';
import path from 'node:path';

import { invalidArgType, outOfRange } from '../core/errors.js';
import { RefTable } from '../core/ref-table.js';
import { checkInteger, checkObject } from '../core/validate.js';
import { PagTable } from '../users/pag-table.js';
import type { BusyRetryPolicy } from './busy-retry.js';

const MAX_TYPED_ARRAY_BYTES = bufferConstants.MAX_LENGTH;

export const DEFAULT_CACHE_SIZE = 64 * 1024 * 1024;
export const DEFAULT_BLOCK_SIZE = 4096;
export const DEFAULT_CHUNK_SIZE = 256 * 1024;
export const DEFAULT_MAX_VNODES = 4096;
export const DEFAULT_MAX_READAHEAD = 4 * 1024 * 1024;
export const DEFAULT_BUSY_DEADLINE_MS = 10_000;
export const DEFAULT_BUSY_DELAY_MS = 1;
export const DEFAULT_BUSY_MAX_DELAY_MS = 100;

export interface CacheManagerOptions {
  /** Bytes of file data the cache holds; rounded down to whole blocks. @default 67108864 (64 MiB) */
  readonly cacheSize?: number;
  /** Bytes per buffer: a power of two from 512 to 1 MiB. @default 4096 */
  readonly blockSize?: number;
  /** The largest fetch or store, in bytes: a multiple of blockSize. @default 262144 (256 KiB) */
  readonly chunkSize?: number;
  /** Files whose status the cache holds at once. @default 4096 */
  readonly maxVnodes?: number;
  /** Read ahead in the background when a file is read sequentially. @default true */
  readonly prefetch?: boolean;
  /** The largest readahead window, in bytes. @default 4194304 (4 MiB) */
  readonly maxReadahead?: number;
  /**
   * Store-behind: once a file has a chunk or more of dirty data, store it in the
   * background while writes go on; flush() waits for those stores and stores the rest.
   * false: nothing is stored before flush(). @default true
   */
  readonly storeBehind?: boolean;
  /**
   * How long a foreground operation (read, write, truncate, flush, stat) keeps retrying
   * a server that answers busy, in ms; 0 fails at once. Background work (prefetch) never
   * retries. @default 10000
   */
  readonly busyDeadlineMs?: number;
  /**
   * The PAGs callers act as. With it, read, write and truncate take a `caller` whose
   * rights the cache checks (and remembers per file) before serving it.
   */
  readonly pags?: PagTable;
  /** The first wait before retrying a busy server, in ms; it doubles each time. @default 1 */
  readonly busyDelayMs?: number;
  /** The longest wait between retries, in ms. @default 100 */
  readonly busyMaxDelayMs?: number;
  /**
   * Where the bytes of a store the server refuses for good (the file is gone, EFBIG,
   * EACCES: store-error.ts) are written, one file per range, before they leave the cache.
   * @default $XDG_STATE_HOME/cmkit/salvage, else ~/.local/state/cmkit/salvage
   */
  readonly salvageDir?: string;
  /**
   * A file to keep the cache in instead of memory (cache-file.ts): created 0600 if it
   * does not exist, mapped shared, paged by the kernel, so cacheSize may be far larger
   * than RAM. A cache that opens a file another one left (closed or killed) finds its
   * data again (recover.ts): clean blocks are served once their file's first status
   * shows them current, and unstored writes are stored by storeRestored(). One process
   * at a time. @default undefined (memory only)
   */
  readonly cacheFile?: string;
}

/** The salvage directory when none is given: under the user's state directory (XDG). */
export function defaultSalvageDir(): string {
  const state = process.env['XDG_STATE_HOME'] || path.join(os.homedir(), '.local', 'state');
  return path.join(state, 'cmkit', 'salvage');
}

/** The options, checked, with defaults filled in. */
export interface ResolvedOptions {
  readonly blockSize: number;
  readonly chunkSize: number;
  /** Buffers: cacheSize in whole blocks. */
  readonly buffers: number;
  readonly maxVnodes: number;
  readonly maxReadahead: number;
  readonly prefetch: boolean;
  readonly storeBehind: boolean;
  readonly busyRetry: BusyRetryPolicy;
  readonly pags: PagTable | undefined;
  readonly salvageDir: string;
  readonly cacheFile: string | undefined;
}

/** Checks `options`; a bad one is a TypeError or RangeError naming it. */
export function resolveOptions(options: CacheManagerOptions): ResolvedOptions {
  checkObject(options, 'options');
  const blockSize = checkInteger(options.blockSize ?? DEFAULT_BLOCK_SIZE, 'options.blockSize', 512, 1 << 20);
  if ((blockSize & (blockSize - 1)) !== 0) throw outOfRange('options.blockSize', 'a power of two', blockSize);
  const chunkSize = checkInteger(options.chunkSize ?? DEFAULT_CHUNK_SIZE, 'options.chunkSize', blockSize, 64 << 20);
  if (chunkSize % blockSize !== 0) throw outOfRange('options.chunkSize', `a multiple of blockSize (${blockSize})`, chunkSize);
  const cacheSize = checkInteger(options.cacheSize ?? DEFAULT_CACHE_SIZE, 'options.cacheSize', 4 * chunkSize, 2 ** 40);
  const maxVnodes = checkInteger(options.maxVnodes ?? DEFAULT_MAX_VNODES, 'options.maxVnodes', 1, 1 << 20);
  const maxReadahead = checkInteger(options.maxReadahead ?? DEFAULT_MAX_READAHEAD, 'options.maxReadahead', blockSize, 1 << 30);
  const prefetch = options.prefetch ?? true;
  if (typeof prefetch !== 'boolean') throw invalidArgType('options.prefetch', 'of type boolean', prefetch);
  const storeBehind = options.storeBehind ?? true;
  if (typeof storeBehind !== 'boolean') throw invalidArgType('options.storeBehind', 'of type boolean', storeBehind);
  const busyRetry: BusyRetryPolicy = {
    deadlineMs: checkInteger(options.busyDeadlineMs ?? DEFAULT_BUSY_DEADLINE_MS, 'options.busyDeadlineMs', 0, 2 ** 31),
    initialDelayMs: checkInteger(options.busyDelayMs ?? DEFAULT_BUSY_DELAY_MS, 'options.busyDelayMs', 1, 2 ** 31),
    maxDelayMs: checkInteger(options.busyMaxDelayMs ?? DEFAULT_BUSY_MAX_DELAY_MS, 'options.busyMaxDelayMs', 1, 2 ** 31),
  };
  const pags = options.pags;
  if (pags !== undefined && !(pags instanceof PagTable)) throw invalidArgType('options.pags', 'an instance of PagTable', pags);
  const buffers = Math.floor(cacheSize / blockSize);
  if (buffers > RefTable.maxCapacity) throw outOfRange('options.cacheSize', `at most ${RefTable.maxCapacity} blocks`, cacheSize);
  const salvageDir = options.salvageDir ?? defaultSalvageDir();
  if (typeof salvageDir !== 'string' || salvageDir.length === 0 || salvageDir.includes('\0')) {
    throw invalidArgType('options.salvageDir', 'a non-empty path', salvageDir);
  }
  const cacheFile = options.cacheFile;
  if (cacheFile !== undefined && (typeof cacheFile !== 'string' || cacheFile.length === 0 || cacheFile.includes('\0'))) {
    throw invalidArgType('options.cacheFile', 'a non-empty path', cacheFile);
  }
  // One view spans the data blocks, and a typed array is at most this long in Node 20.
  if (cacheFile !== undefined && buffers * blockSize > MAX_TYPED_ARRAY_BYTES) {
    throw outOfRange('options.cacheSize', `at most ${MAX_TYPED_ARRAY_BYTES} bytes with a cache file`, cacheSize);
  }
  return {
    blockSize, chunkSize, buffers, maxVnodes, maxReadahead, prefetch, storeBehind, busyRetry, pags,
    salvageDir: path.resolve(salvageDir),
    cacheFile: cacheFile === undefined ? undefined : path.resolve(cacheFile),
  };
}
