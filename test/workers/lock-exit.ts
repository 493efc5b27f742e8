/**
 * A worker for test/core-thread-exit.test.ts, one of two ways a hostile caller ends a
 * thread that holds locks:
 * - 'drop-held': takes the write lock of 200 RwLocks with buffers of their own, drops them,
 *   has GC collect the buffers, and exits (the addon's ledger still lists every word);
 * - 'loop': read, upgrade, write and downgrade on a lock another thread also uses, until
 *   it is terminated, at whatever instruction that lands on.
 */
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';

import { RwLock } from '../../src/index.js';
import type { RwLockDescriptor } from '../../src/index.js';

export type LockExitTask = { readonly kind: 'drop-held' } | { readonly kind: 'loop'; readonly lock: RwLockDescriptor };

const task = workerData as LockExitTask;
if (task.kind === 'drop-held') {
  let taken = 0;
  for (let i = 0; i < 200; i++) if (new RwLock().tryWrite()) taken++;
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  parentPort!.postMessage(taken);
} else {
  const lock = RwLock.attach(task.lock);
  parentPort!.postMessage('looping');
  for (let i = 0; ; i++) {
    lock.read();
    if (i % 3 === 0) {
      lock.upgrade();
      lock.downgrade();
    }
    lock.release();
    lock.write();
    lock.release();
  }
}
