/**
 * Running background jobs (background-job.ts says what they are): on the vnode the
 * scheduling operation handed over (context.schedule), or, for a job that came from
 * another thread through a pool, on the vnode found again by its Fid.
 *
 * Invariants:
 * - A job never rejects: a failure is counted (backgroundFailures, and
 *   storeBehindFailures for a store) and leaves its data dirty.
 * - Background work has no retry permission (origins 'prefetch' and 'store-behind').
 */

import type { Fid } from '../core/fid.js';
import type { BackgroundJob } from './background-job.js';
import type { CacheContext, Vnode } from './context.js';
import { prefetchWindow } from './prefetch.js';
import { storeBehindVnode } from './store.js';
import { ensureStatus, withVnode } from './vnode-status.js';

/** Runs `job` on v, which the caller holds. */
export function runJob(cache: CacheContext, v: Vnode, job: BackgroundJob): Promise<void> {
  return counted(cache, job, () => work(cache, v, job));
}

/** Runs a job made on another thread: its vnode is found by its Fid and held meanwhile. */
export function runJobFor(cache: CacheContext, fid: Fid, job: BackgroundJob): Promise<void> {
  return counted(cache, job, () => withVnode(cache, fid, (v) => work(cache, v, job)));
}

async function work(cache: CacheContext, v: Vnode, job: BackgroundJob): Promise<void> {
  if (job.kind === 'store') return storeBehindVnode(cache, v);
  await ensureStatus(cache, v, 'prefetch');
  await prefetchWindow(cache, v, job.start, job.end);
}

async function counted(cache: CacheContext, job: BackgroundJob, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch {
    cache.v.count('backgroundFailures');
    if (job.kind === 'store') cache.v.count('storeBehindFailures');
  }
}
