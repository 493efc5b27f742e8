/**
 * A CachePool worker: attaches the pool's cache once, runs requests and background jobs
 * on it, and hands the background jobs its cache makes back to the pool, which queues
 * them in the share of the user whose request made them.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { BroadcastChannel, workerData } from 'node:worker_threads';

import { CacheManager } from '../cache/cache-manager.js';
import { Fid } from '../core/fid.js';
import type { BackgroundRequest, PoolTask, PoolWorkerData } from './pool-task.js';

const data = workerData as PoolWorkerData;
const cache = CacheManager.attach(data.cache);
const pool = new BroadcastChannel(data.backgroundChannel);
pool.unref();

// The cache knows nothing of users; the user whose request is running on this worker
// follows the request across its awaits, so the readahead or store-behind it starts is
// charged to that user's share.
const requester = new AsyncLocalStorage<string>();

cache.setBackgroundRunner(async (job) => {
  const request: BackgroundRequest = { user: requester.getStore() ?? '', job };
  pool.postMessage(request);
});

export default function run(task: PoolTask): Promise<unknown> {
  return requester.run(task.user, () => {
    switch (task.op) {
      case 'read':
        return cache.read(Fid.from(task.fid), task.offset, task.length);
      case 'write':
        return cache.write(Fid.from(task.fid), task.offset, task.data);
      case 'truncate':
        return cache.truncate(Fid.from(task.fid), task.length);
      case 'flush':
        return cache.flush(Fid.from(task.fid));
      case 'background':
        return cache.runBackground(task.job);
    }
  });
}
