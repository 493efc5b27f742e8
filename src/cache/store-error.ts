/**
 * Sorting a failed store, where its batch is released (as OpenAFS's cm_ReleaseBIOD does):
 * transient errors keep the data dirty for the next store, permanent ones end it.
 *
 * - transient: the server is busy or timed out, the connection was lost, the backing file
 *   system is full or over quota (ENOSPC, EDQUOT: space may come back) or read-only for
 *   now (EROFS: an operator may remount it), and any failure that names no errno (we
 *   cannot tell, so we keep the data);
 * - permanent: retrying cannot help: the file no longer exists or is another file now
 *   (ENOENT, ESTALE), the store is past the file system's limit (EFBIG), or is not
 *   allowed (EACCES, EPERM), or the path is no longer a file (EISDIR, ENOTDIR).
 */

import { constants } from 'node:os';

import { ServerError } from '../server/server-error.js';

const { errno: E } = constants;

const PERMANENT = new Set<number>([E.ENOENT, E.ESTALE, E.EFBIG, E.EACCES, E.EPERM, E.EISDIR, E.ENOTDIR]);

export type StoreFailure = 'transient' | 'permanent';

/** How a store that rejected with `e` failed. */
export function storeFailure(e: unknown): StoreFailure {
  if (e instanceof ServerError && e.kind !== 'error') return 'transient';
  const errno = errnoOf(e);
  return errno !== undefined && PERMANENT.has(errno) ? 'permanent' : 'transient';
}

/** The positive errno a failure names, if it names one (node:fs gives it negative). */
export function errnoOf(e: unknown): number | undefined {
  const n = (e as { errno?: unknown } | undefined)?.errno;
  return typeof n === 'number' && n !== 0 ? Math.abs(n) : undefined;
}
