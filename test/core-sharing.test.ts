import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { Piscina } from 'piscina';

import { Fid, RefTable, RwLock } from '../src/index.js';
import type { HammerTask } from './workers/hammer.js';

const WORKERS = 4;
const PAIRS = 100_000;
const LOCK_ROUNDS = 30_000;

test('workers share one RefTable and one RwLock; every count and total comes out exact', async () => {
  const table = new RefTable({ capacity: 1024 });
  const lock = new RwLock();
  const fids = Array.from({ length: 64 }, (_, v) => new Fid(1, 7, v, 1));
  // The main thread creates the entries and keeps them held, so none can be recycled.
  const slots = fids.map((f) => table.getHold(f));
  const holdsBySlot = new Int32Array(new SharedArrayBuffer(4 * 1024));
  const guarded = new Int32Array(new SharedArrayBuffer(4));

  const pool = new Piscina({
    filename: path.join(__dirname, 'workers', 'hammer.js'),
    minThreads: WORKERS,
    maxThreads: WORKERS,
    idleTimeout: 1000,
  });
  try {
    const task: HammerTask = {
      table: table.descriptor,
      lock: lock.descriptor,
      fids: fids.map((f) => f.toJSON()),
      holdsBySlot,
      guarded,
      pairs: PAIRS,
      lockRounds: LOCK_ROUNDS,
    };
    const results = await Promise.all(Array.from({ length: WORKERS }, () => pool.run(task)));
    assert.equal(results.length, WORKERS);

    const totalHolds = slots.reduce((sum, s) => sum + holdsBySlot[s]!, 0);
    assert.equal(totalHolds, WORKERS * PAIRS, 'every hold landed on a shared slot');
    for (const s of slots) assert.equal(table.refCount(s), 1, 'only the main thread still holds');
    table.releaseMany(slots);
    assert.equal(table.stats().totalRefs, 0, 'every count is back to zero');

    const writesPerWorker = Math.ceil(LOCK_ROUNDS / 3) + Math.ceil((LOCK_ROUNDS - 1) / 3);
    assert.equal(guarded[0], WORKERS * writesPerWorker, 'no write was lost: writers were exclusive');
    assert.equal(lock.descriptor.words[0], 0, 'the lock is free');
  } finally {
    await pool.destroy();
    table.close();
  }
});
