/**
 * A worker for test/cache-worker-death.test.ts: starts a read that must fetch (the
 * server is slow), says so, and is terminated while the fetch is in flight.
 */
import { parentPort, workerData } from 'node:worker_threads';

import { CacheManager, Fid } from '../../src/index.js';
import type { CacheDescriptor, FidFields } from '../../src/index.js';

const data = workerData as { cache: CacheDescriptor; fid: FidFields };
const cm = CacheManager.attach(data.cache);
void cm.read(Fid.from(data.fid), 0, 4096);
parentPort!.postMessage('reading');
