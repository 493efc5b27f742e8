import { invalidArgType } from '../core/errors.js';
import { Fid, type FidFields } from '../core/fid.js';
import { checkInteger, checkObject } from '../core/validate.js';

/**
 * Work the cache starts on its own, not for a caller who waits: readahead of a file read
 * sequentially, and store-behind of a file with a chunk or more of dirty data. A job is
 * plain data, so a pool can carry it to whichever thread runs it
 * (CacheManager.runBackground on any thread attached to the same cache).
 *
 * Background work has no retry permission: a busy server fails it at once. A failed
 * prefetch is a missed chance (the reader fetches on demand); a failed store leaves its
 * data dirty for the next store.
 */
export type BackgroundJob =
  | { readonly kind: 'prefetch'; readonly fid: FidFields; readonly start: number; readonly end: number }
  | { readonly kind: 'store'; readonly fid: FidFields };

/**
 * Where a cache sends its background jobs. The default runs them on the thread that made
 * them; a pool routes them to its workers under the share of the request that caused them.
 */
export type BackgroundRunner = (job: BackgroundJob) => Promise<void>;

/** Checks a job that came from elsewhere; returns its Fid. */
export function checkBackgroundJob(job: unknown): { job: BackgroundJob; fid: Fid } {
  checkObject(job, 'job');
  const j = job as Partial<Record<string, unknown>>;
  if (j.kind !== 'prefetch' && j.kind !== 'store') throw invalidArgType('job.kind', "'prefetch' or 'store'", j.kind);
  checkObject(j.fid, 'job.fid');
  const fid = Fid.from(j.fid as FidFields);
  if (j.kind === 'prefetch') {
    checkInteger(j.start, 'job.start', 0, Number.MAX_SAFE_INTEGER);
    checkInteger(j.end, 'job.end', j.start as number, Number.MAX_SAFE_INTEGER);
  }
  return { job: job as BackgroundJob, fid };
}
