import assert from 'node:assert/strict';
import { once } from 'node:events';
import path from 'node:path';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';

import { RwLock } from '../src/index.js';
import type { LockExitTask } from './workers/lock-exit.js';

/** Rounds of each program: every one a thread that exits or is terminated. */
const ROUNDS = Number(process.env['CMKIT_THREAD_EXIT_ROUNDS'] ?? 1000);
/** Threads started at once, so that a thousand rounds fit in CI's time. */
const AT_ONCE = 4;
const worker = path.join(__dirname, 'workers', 'lock-exit.js');

/** Runs `round` ROUNDS times, AT_ONCE at a time, while counting the main thread's ticks. */
async function rounds(round: (i: number) => Promise<void>): Promise<number> {
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 1);
  try {
    let next = 0;
    await Promise.all(Array.from({ length: AT_ONCE }, async () => {
      while (next < ROUNDS) await round(next++);
    }));
  } finally {
    clearInterval(ticker);
  }
  return ticks;
}

test('threads that exit holding write locks whose buffers GC already freed crash nothing', async () => {
  let exits = 0;
  const ticks = await rounds(async () => {
    const task: LockExitTask = { kind: 'drop-held' };
    const w = new Worker(worker, { workerData: task });
    // Listening for both first: the worker exits right after it posts, and Node emits
    // 'exit' in the same task as the last 'message'.
    const exited = once(w, 'exit');
    const [taken] = (await once(w, 'message')) as [number];
    assert.equal(taken, 200);
    const [code] = (await exited) as [number];
    assert.equal(code, 0);
    exits++;
  });
  assert.equal(exits, ROUNDS);
  assert.ok(ticks > 0, 'the main thread kept running its timers');
});

test('workers terminated in the middle of lock transitions on a shared lock never abort the process', async () => {
  const lock = new RwLock();
  let terminated = 0;
  let mainRounds = 0;
  const ticks = await rounds(async (i) => {
    const task: LockExitTask = { kind: 'loop', lock: lock.descriptor };
    const w = new Worker(worker, { workerData: task });
    try {
      await once(w, 'message');
      // The main thread takes the same lock meanwhile (a holder per round: rounds
      // overlap), so the worker also waits on it.
      const mine = RwLock.attach(lock.descriptor);
      const deadline = Date.now() + (i % 7);
      do {
        await mine.writeAsync();
        mine.release();
        mainRounds++;
        await new Promise((r) => setImmediate(r));
      } while (Date.now() < deadline);
    } finally {
      await w.terminate();
    }
    terminated++;
  });
  assert.equal(terminated, ROUNDS);
  assert.ok(mainRounds >= ROUNDS && ticks > 0, 'the main thread kept taking the lock');
  // What each terminated worker held was released at its exit: the lock is free.
  const probe = RwLock.attach(lock.descriptor);
  assert.ok(probe.tryWrite(), 'nobody holds the lock after the last termination');
  probe.release();
});
