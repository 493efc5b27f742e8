/**
 * A worker for test/cache-worker-death.test.ts: writes, starts a flush whose store the
 * server is slow to answer, says so, and is terminated while the store is in flight.
 */
import { parentPort, workerData } from 'node:worker_threads';

import { CacheManager, Fid } from '../../src/index.js';
import type { CacheDescriptor, FidFields } from '../../src/index.js';

const data = workerData as { cache: CacheDescriptor; fid: FidFields; bytes: Uint8Array };
const cm = CacheManager.attach(data.cache);
const fid = Fid.from(data.fid);
void (async () => {
  await cm.write(fid, 0, data.bytes);
  void cm.flush(fid).catch(() => {});
  parentPort!.postMessage('flushing');
})();
