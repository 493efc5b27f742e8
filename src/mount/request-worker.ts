/**
 * A request worker of a mount: a worker thread attached to the mount's cache and, as a
 * consumer, to its FUSE session. The mount routes each open file handle to one worker,
 * whose thread then serves that handle's reads, writes, flushes and fsyncs; the copying
 * is spread over cores, and one file's sequential reads stay on one thread (where its
 * readahead state is). Namespace requests stay on the mount's thread.
 */
import { parentPort, workerData } from 'node:worker_threads';

import type { BackgroundJob } from '../cache/background-job.js';
import { CacheManager, type CacheDescriptor } from '../cache/cache-manager.js';
import { Fid } from '../core/fid.js';
import { DataRequests } from './data-requests.js';
import { loadFuse, type FuseRequest } from './fuse.js';
import { RequestTasks } from './request-tasks.js';

export interface RequestWorkerData {
  readonly sessionId: number;
  readonly cache: CacheDescriptor;
  /** Requests served, by op number; the last word counts errors. */
  readonly counters: Int32Array;
  /** The largest file the server can store. */
  readonly maxFileSize: number;
}

/** What the mount posts: 'drain' once its session has stopped; the worker answers 'drained'. */
export type RequestWorkerMessage = 'drain';

/** What a worker posts: its consumer id once it serves, background jobs, then 'drained'. */
export type RequestWorkerReply = { consumer: number } | { job: BackgroundJob } | 'drained';

const { sessionId, cache: descriptor, counters, maxFileSize } = workerData as RequestWorkerData;
const fuse = loadFuse();
const cache = CacheManager.attach(descriptor);
// Readahead and store-behind run on the mounting thread, which holds the server's
// connection: their RPCs then cost no hop between threads, and this thread is left free
// to answer the kernel.
cache.setBackgroundRunner(async (job) => post({ job }));
const session = new fuse.FuseSession(sessionId, () => {
  for (const r of session.take()) tasks.run(r, () => serve(r));
});
const tasks = new RequestTasks(session, counters);
const data = new DataRequests(session, cache, undefined, maxFileSize);

function serve(r: FuseRequest): Promise<void> {
  const fid = new Fid(...r.fid!);
  if (r.op === fuse.ops.read) return data.read(r, fid);
  if (r.op === fuse.ops.write) return data.write(r, fid);
  return data.flush(r, fid, r.op === fuse.ops.fsync);
}

parentPort!.on('message', (m: RequestWorkerMessage) => {
  if (m !== 'drain') return;
  void (async () => {
    await tasks.settled();
    session.stop();
    // Stores the server refuses now stay in the shared cache: the mount's own final
    // flush, after every worker has drained, sorts them (retry or salvage).
    await cache.close().catch(() => {});
    post('drained');
  })();
});
post({ consumer: session.consumerId() });

function post(m: RequestWorkerReply): void {
  parentPort!.postMessage(m);
}
