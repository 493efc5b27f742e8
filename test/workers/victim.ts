/**
 * A worker for test/core-worker-death.test.ts: takes references and the write lock, says
 * so, and then sleeps until it is terminated, releasing nothing itself.
 */
import { parentPort, workerData } from 'node:worker_threads';

import { Fid, RefTable, RwLock } from '../../src/index.js';
import type { FidFields, RefTableDescriptor, RwLockDescriptor } from '../../src/index.js';

const data = workerData as { table: RefTableDescriptor; lock: RwLockDescriptor; fids: FidFields[] };
const table = RefTable.attach(data.table);
const lock = RwLock.attach(data.lock);
let refs = 0;
for (const f of data.fids) {
  const slot = table.getHold(Fid.from(f));
  table.hold(slot);
  refs += 2;
}
lock.write();
parentPort!.postMessage({ refs });
// Sleep forever; worker.terminate() interrupts Atomics.wait.
Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
