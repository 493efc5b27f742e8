/**
 * The locked pass: the loop every foreground operation on a file's blocks runs (the slow
 * read, write). A pass walks the blocks under the vnode lock, never awaiting; when a
 * block needs something that takes an await (need.ts), the pass stops, the lock is
 * released, the need is resolved, and the pass goes on from where it stopped.
 *
 * Invariants:
 * - No lock is held while a need is resolved, so a fetch or a store never blocks the
 *   file's other readers and writers, and a pass sees the state anew each time.
 * - A need carries what it holds (a claimed run keeps its buffers held and Busy); its
 *   resolution always lets go of it.
 * - A Busy buffer whose claimer has exited is taken back after one wait slice, so a
 *   terminated worker never leaves a block waited on forever.
 */

import { setImmediate as nextTurn } from 'node:timers/promises';

import { threadAlive } from '../core/threads.js';
import { assertLocked, type CacheContext, type Origin, type Vnode } from './context.js';
import { fetchRun } from './fetch.js';
import { HEADER_I32, HeaderI32, claimerOf } from './layout.js';
import type { Need } from './need.js';
import { flushAllDirty } from './store.js';

/** How long a thread waits on a Busy buffer before checking that its claimer lives. */
const BUSY_WAIT_SLICE_MS = 50;

/** Runs `pass` under v's lock in `mode` until it needs nothing more. */
export async function lockedPass(
  cache: CacheContext,
  v: Vnode,
  mode: 'read' | 'write',
  origin: Origin,
  pass: () => Need | undefined,
): Promise<void> {
  for (;;) {
    let need: Need | undefined;
    if (mode === 'write') await v.lock.writeAsync();
    else await v.lock.readAsync();
    try {
      need = pass();
    } finally {
      v.lock.release();
    }
    if (need === undefined) return;
    await resolve(cache, v, need, origin);
  }
}

/**
 * Under the vnode lock: runs `step` from `pos` block by block until `end`, or until a
 * step says what it needs first.
 */
export function walkBlocks(v: Vnode, pos: number, end: number, step: (pos: number) => number | Need): { pos: number; need: Need | undefined } {
  assertLocked(v, 'walkBlocks');
  while (pos < end) {
    const r = step(pos);
    if (typeof r !== 'number') return { pos, need: r };
    pos += r;
  }
  return { pos, need: undefined };
}

/** Does, without the vnode lock, what a locked pass said it needs. */
async function resolve(cache: CacheContext, v: Vnode, need: Need, origin: Origin): Promise<void> {
  switch (need.kind) {
    case 'fetch':
      return fetchRun(cache, v, need.run, origin);
    case 'busy': {
      const H = cache.v.headers;
      const hs = need.slot * HEADER_I32 + HeaderI32.State;
      const r = Atomics.waitAsync(H, hs, need.state, BUSY_WAIT_SLICE_MS);
      if ((r.async ? await r.value : r.value) !== 'timed-out') return;
      // Still claimed after a whole slice: if its claimer has exited (a terminated
      // worker), nobody will finish the fetch. Take the buffer back; its reference was
      // released with the rest of that thread's holds.
      if (!threadAlive(claimerOf(need.state)) && Atomics.compareExchange(H, hs, need.state, 0) === need.state) {
        cache.v.count('claimsTakenBack');
        Atomics.notify(H, hs);
      }
      return;
    }
    case 'retry':
      await nextTurn();
      return;
    case 'full':
      // Every buffer is held; most are dirty. Storing them releases their holds.
      if (!(await flushAllDirty(cache))) {
        throw Object.assign(new Error('the cache is full of buffers in use; make cacheSize larger'), {
          code: 'ERR_CMKIT_TABLE_FULL',
        });
      }
  }
}
