/**
 * Salvage: where the bytes of a store that can never succeed go, so that they are neither
 * dropped silently nor kept in the cache forever (which would hold every later flush and
 * the unmount behind them). One file per lost range, named by the Fid, the range and,
 * where the server can say without an RPC (FileServer.pathOf), the path
 * (`<fid>@<offset>+<length>[@<path, / as %2F>]`), readable by the cache's owner only, plus
 * a line in `salvage.log` beside them and a process warning (code CMKIT_SALVAGED).
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
  const where = cache.server.pathOf?.(fid);
  for (const r of ranges) {
    if (r.bytes.length === 0) continue;
    const name = `${fid}@${r.offset}+${r.bytes.length}${where === undefined ? '' : `@${encodePath(where)}`}`;
    const file = path.join(dir, name);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      // wx: a range salvaged twice (the same bytes refused again) keeps the first copy.
      await writeFile(file, r.bytes, { mode: 0o600, flag: 'wx' }).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e;
      });
      const line = `${new Date().toISOString()} ${name} errno ${errno}${where === undefined ? '' : ` path ${JSON.stringify(where)}`}: ${reason}\n`;
      await appendFile(path.join(dir, 'salvage.log'), line, { mode: 0o600 });
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

/**
 * A path as part of one file name: `%` and `/` escaped; a long one keeps its last 40
 * characters (at most 160 bytes), so the name stays within NAME_MAX (255) with the Fid
 * and the range. salvage.log has the whole path.
 */
function encodePath(p: string): string {
  const encoded = p.replace(/%/g, '%25').replace(/\//g, '%2F');
  return Buffer.byteLength(encoded) <= 160 ? encoded : `...${[...encoded].slice(-40).join('')}`;
}
