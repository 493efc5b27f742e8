import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FairShareQueue } from '../src/index.js';
import { seededRandom } from './helpers/random.js';

/** A task that runs until the test finishes it. */
class Held {
  readonly #finish: Array<() => void> = [];
  readonly started: string[] = [];

  task(share: string): () => Promise<void> {
    return () => {
      this.started.push(share);
      return new Promise<void>((resolve) => this.#finish.push(resolve));
    };
  }

  /** Finishes the k-th running task; the queue reacts a few microtasks later. */
  async finish(k: number): Promise<void> {
    this.#finish.splice(k, 1)[0]!();
    await new Promise((resolve) => setImmediate(resolve));
  }

  get running(): number {
    return this.#finish.length;
  }
}

test('fair share: a flood holds at most n2 slots, and freed slots go to a starved share until it has n1', async () => {
  const q = new FairShareQueue({ slots: 8, n2: 6, n1: 4 });
  const held = new Held();
  const flood = Array.from({ length: 100 }, () => q.submit('flooder', held.task('flooder')));
  assert.equal(q.shareStats('flooder').running, 6, 'alone, the flooder gets n2 of 8 slots');
  assert.equal(q.running, 6);

  const reads = Array.from({ length: 10 }, () => q.submit('reader', held.task('reader')));
  assert.equal(q.shareStats('reader').running, 2, 'the reader takes the 2 free slots at once');
  // The reader is starved (work waiting, fewer than n1 running): each slot the flooder
  // frees goes to the reader, not back to the flooder.
  await held.finish(0);
  await held.finish(0);
  assert.equal(q.shareStats('reader').running, 4);
  assert.equal(q.shareStats('flooder').running, 4);
  // No longer starved: now they take turns, each up to n2.
  while (q.shareStats('reader').waiting > 0) await held.finish(0);
  const flooder = q.shareStats('flooder');
  assert.equal(flooder.peakRunning, 6);
  assert.ok(flooder.peakStartedWhileOthersStarved <= 4, 'no start took the flooder past n1 while the reader starved');
  assert.ok(q.shareStats('reader').peakRunning <= 6);
  while (held.running > 0) await held.finish(0);
  await Promise.all([...flood, ...reads]);
  assert.equal(q.shareStats('flooder').started, 100);
  assert.equal(q.shareStats('reader').started, 10);
  await q.drain();
});

test('fair share, randomized: slots, n2 and n1 always hold and every task runs', async () => {
  const { next, seed } = seededRandom();
  console.log(`# seed ${seed} (replay: CMKIT_SEED=${seed} node --test dist/test/pool-fair-share.test.js)`);
  const random = (): number => next() / 2 ** 32;
  const slots = 12;
  const n2 = 5;
  const n1 = 3;
  const q = new FairShareQueue({ slots, n2, n1 });
  const held = new Held();
  const shares = ['a', 'b', 'c', 'd'];
  const done: Array<Promise<void>> = [];
  let submitted = 0;
  for (let step = 0; step < 3000; step++) {
    if (random() < 0.55 && submitted < 1500) {
      const share = shares[Math.floor(random() * (random() < 0.5 ? 1 : shares.length))]!; // 'a' floods
      done.push(q.submit(share, held.task(share)));
      submitted++;
    } else if (held.running > 0) {
      await held.finish(Math.floor(random() * held.running));
    }
    assert.ok(q.running <= slots, 'never more than slots');
    let starved = 0;
    for (const s of shares) {
      const st = q.shareStats(s);
      assert.ok(st.running <= n2, `share ${s} never above n2`);
      if (st.waiting > 0 && st.running < n1) starved++;
    }
    // Work-conserving: a free slot is never left idle while some share may use it.
    if (q.running < slots) {
      for (const s of shares) {
        const st = q.shareStats(s);
        if (st.waiting > 0) assert.ok(st.running >= (starved > (st.running < n1 ? 1 : 0) ? n1 : n2), `share ${s} waits only at its cap`);
      }
    }
  }
  while (held.running > 0 || q.waiting > 0) await held.finish(0);
  await Promise.all(done);
  for (const s of shares) assert.ok(q.shareStats(s).peakStartedWhileOthersStarved <= n1);
  assert.equal(held.started.length, submitted);
});

test('FIFO mode: tasks start in arrival order whatever their share', async () => {
  const q = new FairShareQueue({ slots: 2, n2: 2, n1: 1, fair: false });
  const held = new Held();
  const order = ['a', 'a', 'a', 'b', 'a', 'b'];
  const done = order.map((s) => q.submit(s, held.task(s)));
  assert.deepEqual(held.started, ['a', 'a'], 'one share may take every slot');
  while (held.running > 0) await held.finish(0);
  await Promise.all(done);
  assert.deepEqual(held.started, order);
});

test('a task that throws or rejects frees its slot and rejects its submit', async () => {
  const q = new FairShareQueue({ slots: 1, n2: 1, n1: 1 });
  await assert.rejects(q.submit('a', () => { throw new Error('sync'); }), /sync/);
  await assert.rejects(q.submit('a', () => Promise.reject(new Error('async'))), /async/);
  assert.equal(await q.submit('a', async () => 7), 7);
  assert.equal(q.running, 0);
});
