import path from 'node:path';

import { Piscina } from 'piscina';

import type { BenchResult, BenchTask } from './workers/bench-worker.js';

/** A pool of exactly `threads` bench workers. */
export function benchPool(threads: number): Piscina<BenchTask, BenchResult> {
  return new Piscina({
    filename: path.join(__dirname, 'workers', 'bench-worker.js'),
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: 5000,
    // Keep the event loop running between tasks: background cache work must finish.
    atomics: 'async',
  });
}

export function newBarrier(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4));
}
