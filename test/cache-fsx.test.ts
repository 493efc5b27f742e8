import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { Piscina } from 'piscina';

import { CacheManager, MemoryFileServer } from '../src/index.js';
import type { RpcKind, ServerFaultKind } from '../src/index.js';
import { fidOf, firstDifference } from './helpers/files.js';
import { seededRandom } from './helpers/random.js';
import type { FsxOp, FsxResult, FsxTask } from './workers/fsx-worker.js';

// CMKIT_FSX_OPS sets the length (the ASan pass runs a shorter one); a failing run
// prints the seed that replays its operations (the interleaving of workers is not
// replayed, so a rare failure may need several runs of that seed).
const OPS = Number(process.env['CMKIT_FSX_OPS'] ?? 100_000);
const WORKERS = 3;
const BLOCK = 512;
const CHUNK = 2048;
const FAULT_RATE = 0.03;

test(`fsx: ${OPS} operations from ${WORKERS} workers and a second client, with faults, never a wrong byte`, { timeout: 20 * 60_000 }, async (t) => {
  const { next, seed } = seededRandom();
  t.diagnostic(`seed ${seed} (replay: CMKIT_SEED=${seed} CMKIT_FSX_OPS=${OPS} node --test dist/test/cache-fsx.test.js)`);
  const rand = (n: number): number => next() % n;
  const bytes = (n: number): Uint8Array => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = next() & 0xff;
    return out;
  };

  const server = new MemoryFileServer();
  const other = server.connect();
  // Sizes straddle block and chunk boundaries.
  const sizes = [BLOCK - 1, CHUNK + 1, 3 * CHUNK - BLOCK / 2, 7 * CHUNK + 3];
  const fids = sizes.map((_, k) => fidOf(700 + k));
  const models = sizes.map((size, k) => {
    const initial = bytes(size);
    server.createFile(fids[k]!, initial);
    return initial;
  });
  const cm = CacheManager.create(server.connect(), {
    blockSize: BLOCK,
    chunkSize: CHUNK,
    cacheSize: 16 * CHUNK,
    maxReadahead: 4 * CHUNK,
    busyDelayMs: 1,
    busyMaxDelayMs: 2,
  });
  const pool = new Piscina<FsxTask, FsxResult>({
    filename: path.join(__dirname, 'workers', 'fsx-worker.js'),
    minThreads: WORKERS,
    maxThreads: WORKERS,
    idleTimeout: 5000,
    // Workers keep their event loop running between tasks: prefetch started by one task
    // finishes after it, and its RPC replies must be received (see the README).
    atomics: 'async',
  });
  const counts: Record<string, number> = {};
  let failures = 0;
  const nextRead = fids.map(() => 0);
  const run = (k: number, step: FsxOp): Promise<FsxResult> =>
    pool.run({ cache: cm.descriptor, fid: fids[k]!.toJSON(), step });

  /** One step on file k: an operation, the model's update, and the check of a read. */
  const stepOn = async (k: number, op: number): Promise<void> => {
    const model = models[k]!;
    const size = model.length;
    const where = `seed ${seed}, op ${op}, file ${k}`;
    const kind = rand(100);
    if (kind < 40) {
      const offset = rand(2) === 0 ? Math.min(nextRead[k]!, size) : rand(size + BLOCK);
      const length = rand(3 * CHUNK);
      nextRead[k] = offset + length;
      const r = await run(k, { op: 'read', offset, length });
      failures += r.failures;
      const want = model.subarray(offset, offset + length);
      assert.equal(r.bytes!.length, want.length, `${where}: read length`);
      const d = firstDifference(r.bytes!, want);
      assert.equal(d, -1, `${where}: wrong byte at ${offset + d}`);
      counts['read'] = (counts['read'] ?? 0) + 1;
    } else if (kind < 70) {
      const offset = rand(size + CHUNK);
      const data = bytes(rand(2 * CHUNK) + 1);
      const r = await run(k, { op: 'write', offset, data });
      failures += r.failures;
      const grown = new Uint8Array(Math.max(size, offset + data.length));
      grown.set(model);
      grown.set(data, offset);
      models[k] = grown;
      counts['write'] = (counts['write'] ?? 0) + 1;
    } else if (kind < 78) {
      const length = rand(size + CHUNK);
      failures += (await run(k, { op: 'truncate', length })).failures;
      const resized = new Uint8Array(length);
      resized.set(model.subarray(0, Math.min(length, size)));
      models[k] = resized;
      counts['truncate'] = (counts['truncate'] ?? 0) + 1;
    } else if (kind < 86) {
      failures += (await run(k, { op: 'flush' })).failures;
      assert.equal(firstDifference(server.contents(fids[k]!), model), -1, `${where}: server after flush`);
      counts['flush'] = (counts['flush'] ?? 0) + 1;
    } else if (kind < 93) {
      failures += (await run(k, { op: 'evict' })).failures;
      counts['evict'] = (counts['evict'] ?? 0) + 1;
    } else {
      // The second client writes; ours is flushed first, so the outcome is defined.
      failures += (await run(k, { op: 'flush' })).failures;
      const offset = rand(size + BLOCK);
      const data = bytes(rand(CHUNK) + 1);
      for (let attempt = 0; ; attempt++) {
        try {
          await other.storeData(fids[k]!, offset, data);
          break;
        } catch (e) {
          if (attempt > 200) throw e;
          failures++;
        }
      }
      const grown = new Uint8Array(Math.max(size, offset + data.length));
      grown.set(models[k]!);
      grown.set(data, offset);
      models[k] = grown;
      counts['second client'] = (counts['second client'] ?? 0) + 1;
    }
  };

  const rpcs: RpcKind[] = ['fetchStatus', 'fetchData', 'storeData'];
  const kinds: ServerFaultKind[] = ['error', 'timeout', 'busy'];
  try {
    let op = 0;
    while (op < OPS) {
      if (next() / 2 ** 32 < FAULT_RATE * fids.length) {
        server.injectFault({ rpc: rpcs[rand(3)]!, kind: kinds[rand(3)]!, count: 1 + rand(2) });
      }
      // One operation on every file at once, each from whichever worker is free.
      await Promise.all(fids.map((_, k) => stepOn(k, op + k)));
      op += fids.length;
    }
    for (let k = 0; k < fids.length; k++) {
      failures += (await run(k, { op: 'flush' })).failures;
      assert.equal(firstDifference(server.contents(fids[k]!), models[k]!), -1, `seed ${seed}: final contents of file ${k}`);
    }
    t.diagnostic(`operations: ${JSON.stringify(counts)}; server failures retried: ${failures}`);
    t.diagnostic(`cache stats: ${JSON.stringify(cm.stats())}`);
  } finally {
    await pool.destroy();
    await cm.close();
  }
});
