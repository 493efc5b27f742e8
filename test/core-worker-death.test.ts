import assert from 'node:assert/strict';
import { once } from 'node:events';
import path from 'node:path';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';

import { Piscina } from 'piscina';

import { Fid, RefTable, RwLock } from '../src/index.js';
import { addon } from '../src/core/native.js';
import type { HammerTask } from './workers/hammer.js';

test('a worker terminated while holding references and the write lock leaves nothing held', async () => {
  const table = new RefTable({ capacity: 256 });
  const lock = new RwLock();
  const fids = Array.from({ length: 16 }, (_, v) => new Fid(1, 9, v, 1));
  const slots = fids.map((f) => table.getHold(f)); // the main thread's own: keeps the entries findable

  const victim = new Worker(path.join(__dirname, 'workers', 'victim.js'), {
    workerData: { table: table.descriptor, lock: lock.descriptor, fids: fids.map((f) => f.toJSON()) },
  });
  const [ready] = (await once(victim, 'message')) as [{ refs: number }];
  assert.equal(ready.refs, 32);
  assert.equal(table.stats().totalRefs, 16 + 32, 'the victim holds its references');
  assert.ok(!RwLock.attach(lock.descriptor).tryRead(), 'and the write lock');

  const pool = new Piscina({ filename: path.join(__dirname, 'workers', 'hammer.js'), minThreads: 2, maxThreads: 2, idleTimeout: 1000 });
  try {
    const holdsBySlot = new Int32Array(new SharedArrayBuffer(4 * 256));
    const guarded = new Int32Array(new SharedArrayBuffer(4));
    const task: HammerTask = {
      table: table.descriptor,
      lock: lock.descriptor,
      fids: fids.map((f) => f.toJSON()),
      holdsBySlot,
      guarded,
      pairs: 20_000,
      lockRounds: 3_000,
    };
    // The others start while the victim holds the lock; their lock rounds wait for it.
    const work = Promise.all([pool.run(task), pool.run(task)]);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(guarded[0], 0, 'no writer got in while the victim held the lock');
    await victim.terminate();

    await work;
    assert.equal(guarded[0], 2 * 2_000, 'the other workers finished every write under the lock');
    assert.equal(slots.reduce((n, s) => n + holdsBySlot[s]!, 0), 2 * 20_000);
    for (const s of slots) assert.equal(table.refCount(s), 1, 'only the main thread\'s reference is left');
    table.releaseMany(slots);
    assert.equal(table.stats().totalRefs, 0, 'every count is back to zero');
    // Free: no reader, no writer (a stale "someone sleeps" bit is harmless).
    assert.equal(lock.descriptor.words[0]! & ~addon.rwLock.bits.waiters, 0, 'the lock is free');
  } finally {
    await pool.destroy();
    table.close();
  }
});

test('a thread releases only what it holds; disowned references are released by anyone', () => {
  const table = new RefTable({ capacity: 8 });
  const slot = table.getHold(new Fid(1, 9, 100, 1));
  table.disown(slot);
  assert.throws(() => table.release(slot), { name: 'RangeError', code: 'ERR_CMKIT_NOT_HELD' }, 'no longer this thread\'s');
  assert.throws(() => table.disown(slot), { code: 'ERR_CMKIT_NOT_HELD' });
  assert.equal(table.refCount(slot), 1, 'the reference is still counted');
  table.releaseDisowned(slot);
  assert.equal(table.refCount(slot), 0);
  assert.throws(() => table.releaseDisowned(slot), { code: 'ERR_CMKIT_NOT_HELD' });
  table.close();
});
