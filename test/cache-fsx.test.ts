import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { Piscina } from 'piscina';

import { CacheManager, MemoryFileServer } from '../src/index.js';
import type { RpcKind, ServerFaultKind } from '../src/index.js';
import { fidOf } from './helpers/files.js';
import { runFsx, type FsxTarget } from './helpers/fsx.js';
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

test(`fsx: ${OPS} operations from ${WORKERS} workers and a second client, with transient faults and stores refused for good, never a wrong byte`, { timeout: 20 * 60_000 }, async (t) => {
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
  const salvageDir = mkdtempSync(path.join(os.tmpdir(), 'cmkit-fsx-salvage-'));
  const cm = CacheManager.create(server.connect(), {
    salvageDir,
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
  const run = async (k: number, step: FsxOp): Promise<FsxResult> =>
    pool.run({ cache: cm.descriptor, fid: fids[k]!.toJSON(), step });
  const target: FsxTarget = {
    read: async (k, offset, length) => {
      const r = await run(k, { op: 'read', offset, length });
      return { bytes: r.bytes!, failures: r.failures };
    },
    write: async (k, offset, data) => (await run(k, { op: 'write', offset, data })).failures,
    truncate: async (k, length) => (await run(k, { op: 'truncate', length })).failures,
    flush: async (k) => (await run(k, { op: 'flush' })).failures,
    evict: async (k) => (await run(k, { op: 'evict' })).failures,
    refusedFlush: async (k) => {
      // ENOENT: the file is gone as far as the store can tell, so nothing can succeed.
      const before = cm.storeError(fids[k]!).seq;
      server.injectFault({ rpc: 'storeData', kind: 'error', fid: fids[k]!, errno: -2, count: 1e9 });
      try {
        await run(k, { op: 'flush' });
      } finally {
        server.clearFaults();
      }
      return cm.storeError(fids[k]!).seq !== before;
    },
    serverContents: async (k) => server.contents(fids[k]!),
    secondClient: async (k, offset, data) => {
      for (let failures = 0; ; failures++) {
        try {
          await other.storeData(fids[k]!, offset, data);
          return failures;
        } catch (e) {
          if (failures > 200) throw e;
        }
      }
    },
  };

  const rpcs: RpcKind[] = ['fetchStatus', 'fetchData', 'storeData'];
  const kinds: ServerFaultKind[] = ['error', 'timeout', 'busy'];
  try {
    const { counts, failures } = await runFsx({
      ops: OPS,
      block: BLOCK,
      chunk: CHUNK,
      initial: models,
      target,
      next,
      seed,
      beforeRound: () => {
        if (next() / 2 ** 32 < FAULT_RATE * fids.length) {
          server.injectFault({ rpc: rpcs[rand(3)]!, kind: kinds[rand(3)]!, count: 1 + rand(2) });
        }
      },
    });
    t.diagnostic(`operations: ${JSON.stringify(counts)}; server failures retried: ${failures}`);
    t.diagnostic(`cache stats: ${JSON.stringify(cm.stats())}`);
  } finally {
    await pool.destroy();
    await cm.close();
    rmSync(salvageDir, { recursive: true, force: true });
  }
});
