/**
 * Salvage: where the bytes of a store that can never succeed go, so that they are neither
 * dropped silently nor kept in the cache forever (which would hold every later flush and
 * the unmount behind them). One file per lost range, named by the Fid and the range
 * (`<fid>@<offset>+<length>`), readable by the cache's owner only, plus a line in
 * `salvage.log` beside them and a process warning (code CMKIT_SALVAGED).
 *
 * Invariants:
 * - Never rejects and never retries: a salvage that fails (the salvage directory itself
 *   unwritable) is counted (salvageFailures) and warned about, with the errno.
 * - Runs without any lock: the bytes it writes are the batch's own copy.
 */

import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

import type { Fid } from '../core/fid.js';
import type { CacheContext } from './context.js';

export interface LostRange {
  readonly offset: number;
  readonly bytes: Uint8Array;
}

/** Writes `ranges` of fid, which a store refused for good with `errno`, to the salvage directory. */
export async function salvage(cache: CacheContext, fid: Fid, ranges: readonly LostRange[], errno: number, reason: string): Promise<void> {
  const dir = cache.salvageDir;
  for (const r of ranges) {
    if (r.bytes.length === 0) continue;
    const name = `${fid}@${r.offset}+${r.bytes.length}`;
    const file = path.join(dir, name);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      // wx: a range salvaged twice (the same bytes refused again) keeps the first copy.
      await writeFile(file, r.bytes, { mode: 0o600, flag: 'wx' }).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e;
      });
      await appendFile(path.join(dir, 'salvage.log'), `${new Date().toISOString()} ${name} errno ${errno}: ${reason}\n`, { mode: 0o600 });
      cache.v.count('bytesSalvaged', r.bytes.length);
      process.emitWarning(`cmkit: a store of ${fid} was refused for good (errno ${errno}); its bytes ${r.offset}-${r.offset + r.bytes.length} are in ${file}`, {
        code: 'CMKIT_SALVAGED',
      });
    } catch (e) {
      cache.v.count('salvageFailures');
      process.emitWarning(`cmkit: could not salvage bytes ${r.offset}-${r.offset + r.bytes.length} of ${fid} to ${file}: ${(e as Error).message}; they are lost`, {
        code: 'CMKIT_SALVAGE_FAILED',
      });
    }
  }
}
