import { availableParallelism } from 'node:os';
import path from 'node:path';
import { BroadcastChannel } from 'node:worker_threads';

import { Piscina } from 'piscina';

import { checkBackgroundJob } from '../cache/background-job.js';
import type { CacheManager } from '../cache/cache-manager.js';
import { invalidArgType, typeError } from '../core/errors.js';
import { checkFid, type Fid } from '../core/fid.js';
import { checkInteger, checkObject } from '../core/validate.js';
import { FairShareQueue, type ShareStats } from './fair-share.js';
import type { BackgroundRequest, PoolTask, PoolWorkerData } from './pool-task.js';

/** CERN's 2012 AFS file servers: 256 threads, of which one user held at most 60, or 30 while others waited. */
const CERN_THREADS = 256;
const CERN_N2 = 60;
const CERN_N1 = 30;

export interface CachePoolOptions {
  /** Worker threads. @default os.availableParallelism() */
  readonly threads?: number;
  /** Requests and background jobs that run at once over all threads (the file server's thread count). @default 256 */
  readonly slots?: number;
  /** The most one share runs at once. @default round(slots * 60 / 256), at least 2 */
  readonly n2?: number;
  /** The most a share is brought up to while another is starved; below n2. @default round(slots * 30 / 256), at least 1 */
  readonly n1?: number;
  /** What one share is: each user, or each user on each volume. @default 'user' */
  readonly shareBy?: 'user' | 'user+volume';
  /** false: one FIFO queue for everyone, bounded only by slots (the design fair share replaces). @default true */
  readonly fairShare?: boolean;
}

export interface CachePoolStats {
  readonly running: number;
  readonly waiting: number;
  /** Background jobs the workers' caches handed to the pool. */
  readonly backgroundJobs: number;
}

let nextPoolId = 0;

/**
 * A bounded pool of worker threads serving one cache: requests (read, write, truncate,
 * flush) and the background work they cause (readahead, store-behind) all queue here
 * and take turns by fair share (see fair-share.ts), so one user's flood cannot hold
 * every worker while another user's read waits.
 *
 * Create it on the thread that created the cache; it attaches every worker to it.
 */
export class CachePool {
  readonly #piscina: Piscina;
  readonly #queue: FairShareQueue;
  readonly #channel: BroadcastChannel;
  readonly #shareBy: 'user' | 'user+volume';
  #backgroundJobs = 0;
  #closed = false;

  constructor(cache: CacheManager, options: CachePoolOptions = {}) {
    checkObject(cache, 'cache');
    checkObject(options, 'options');
    const threads = checkInteger(options.threads ?? availableParallelism(), 'options.threads', 1, 1024);
    const slots = checkInteger(options.slots ?? CERN_THREADS, 'options.slots', 2, 1 << 16);
    const n2 = checkInteger(options.n2 ?? Math.max(2, Math.round((slots * CERN_N2) / CERN_THREADS)), 'options.n2', 2, slots);
    const n1 = checkInteger(options.n1 ?? Math.max(1, Math.round((slots * CERN_N1) / CERN_THREADS)), 'options.n1', 1, n2 - 1);
    const shareBy = options.shareBy ?? 'user';
    if (shareBy !== 'user' && shareBy !== 'user+volume') throw invalidArgType('options.shareBy', "'user' or 'user+volume'", shareBy);
    const fair = options.fairShare ?? true;
    if (typeof fair !== 'boolean') throw invalidArgType('options.fairShare', 'of type boolean', fair);

    this.#shareBy = shareBy;
    this.#queue = new FairShareQueue({ slots, n2, n1, fair });
    const backgroundChannel = `cmkit.pool.${process.pid}.${nextPoolId++}.${Math.random().toString(36).slice(2)}`;
    this.#channel = new BroadcastChannel(backgroundChannel);
    this.#channel.unref();
    this.#channel.onmessage = (event) => this.#onBackground((event as { data: BackgroundRequest }).data);
    const workerData: PoolWorkerData = { cache: cache.descriptor, backgroundChannel };
    this.#piscina = new Piscina({
      filename: path.join(__dirname, 'pool-worker.js'),
      workerData,
      minThreads: threads,
      maxThreads: threads,
      // The queue above never starts more than `slots` tasks, so each worker is asked
      // for at most its share of them and piscina's own queue stays empty.
      concurrentTasksPerWorker: Math.ceil(slots / threads),
      // Idle workers must keep their event loops turning: background work they started
      // (and other workers wait on) has to finish. See the README.
      atomics: 'async',
      idleTimeout: Infinity,
    });
  }

  read(user: string, fid: Fid, offset: number, length: number): Promise<Uint8Array> {
    return this.#request(user, fid, { op: 'read', user, fid: checkFid(fid, 'fid').toJSON(), offset, length }) as Promise<Uint8Array>;
  }

  write(user: string, fid: Fid, offset: number, data: Uint8Array): Promise<void> {
    return this.#request(user, fid, { op: 'write', user, fid: checkFid(fid, 'fid').toJSON(), offset, data }) as Promise<void>;
  }

  truncate(user: string, fid: Fid, length: number): Promise<void> {
    return this.#request(user, fid, { op: 'truncate', user, fid: checkFid(fid, 'fid').toJSON(), length }) as Promise<void>;
  }

  flush(user: string, fid: Fid): Promise<void> {
    return this.#request(user, fid, { op: 'flush', user, fid: checkFid(fid, 'fid').toJSON() }) as Promise<void>;
  }

  /**
   * Background fetch of [offset, offset + length) into the cache, in `user`'s share: what
   * a gateway queues when it knows what will be read next. Resolves when it has run;
   * never rejects for a server failure (the reader fetches on demand).
   */
  prefetch(user: string, fid: Fid, offset: number, length: number): Promise<void> {
    checkInteger(offset, 'offset', 0, Number.MAX_SAFE_INTEGER);
    checkInteger(length, 'length', 0, Number.MAX_SAFE_INTEGER - offset);
    const job = { kind: 'prefetch' as const, fid: checkFid(fid, 'fid').toJSON(), start: offset, end: offset + length };
    return this.#request(user, fid, { op: 'background', user, job }) as Promise<void>;
  }

  /** How many tasks run and wait now. */
  stats(): CachePoolStats {
    return { running: this.#queue.running, waiting: this.#queue.waiting, backgroundJobs: this.#backgroundJobs };
  }

  /** One share's counts and peaks: the share of `user`, on `volume` if shared by volume. */
  shareStats(user: string, volume?: number): ShareStats {
    return this.#queue.shareStats(this.#shareOf(user, volume ?? 0));
  }

  /** Waits for queued and running work (including background jobs), then stops the workers. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue.drain();
    this.#channel.close();
    await this.#piscina.destroy();
  }

  #request(user: string, fid: Fid, task: PoolTask): Promise<unknown> {
    if (this.#closed) return Promise.reject(closedError());
    if (typeof user !== 'string') return Promise.reject(invalidArgType('user', 'of type string', user));
    return this.#queue.submit(this.#shareOf(user, fid.volume), () => this.#piscina.run(task));
  }

  #onBackground(request: BackgroundRequest): void {
    // Jobs posted as the pool closes still run: a store-behind job carries written data.
    const { job, fid } = checkBackgroundJob(request.job);
    this.#backgroundJobs++;
    const task: PoolTask = { op: 'background', user: request.user, job };
    void this.#queue.submit(this.#shareOf(request.user, fid.volume), () => this.#piscina.run(task)).catch(() => {
      // runBackground counts its own failures; this is a worker that went away.
    });
  }

  #shareOf(user: string, volume: number): string {
    return this.#shareBy === 'user' ? user : `${user}\u0000${volume}`;
  }
}

function closedError(): Error {
  return typeError('ERR_CMKIT_CLOSED', 'CachePool: the pool is closed');
}
