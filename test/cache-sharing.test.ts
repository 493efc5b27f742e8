import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { Piscina } from 'piscina';

import { CacheManager, MemoryFileServer } from '../src/index.js';
import { fidOf, firstDifference, patterned } from './helpers/files.js';
import { recordByte, type CacheTask } from './workers/cache-worker.js';

const WORKERS = 3;
const RECORD = 300; // not a divisor of the block size: neighbours share blocks
const RECORDS = 600;

test('workers share one cache: each sees the others\' writes before any store, and the server ends equal to the model', async () => {
  const server = new MemoryFileServer();
  const fids = [fidOf(300), fidOf(301)];
  for (const [k, fid] of fids.entries()) server.createFile(fid, patterned(50_000, k + 1));
  const cm = CacheManager.create(server.connect(), { cacheSize: 4 * 1024 * 1024, chunkSize: 16 * 1024, storeBehind: false });
  const pool = new Piscina({
    filename: path.join(__dirname, 'workers', 'cache-worker.js'),
    minThreads: WORKERS,
    maxThreads: WORKERS,
    idleTimeout: 1000,
    // Keep the event loop running between tasks: background cache work must finish.
    atomics: 'async',
  });
  try {
    const base = { cache: cm.descriptor, fids: fids.map((f) => f.toJSON()), workers: WORKERS, record: RECORD, records: RECORDS };
    const task = (phase: CacheTask['phase'], worker: number): CacheTask => ({ ...base, phase, worker });

    const written = await Promise.all(Array.from({ length: WORKERS }, (_, w) => pool.run(task('write', w))));
    assert.equal(written.reduce((a: number, b: number) => a + b, 0), RECORD * RECORDS * fids.length);
    assert.equal(server.counters.storeData, 0, 'nothing stored yet: the workers met in shared memory');

    const checked = await Promise.all(Array.from({ length: WORKERS }, (_, w) => pool.run(task('read', w))));
    for (const c of checked) assert.equal(c, RECORD * RECORDS * fids.length, 'each worker read every record');

    await cm.flushAll();
    for (const [k, fid] of fids.entries()) {
      const model = patterned(50_000, k + 1);
      const grown = new Uint8Array(Math.max(model.length, RECORD * RECORDS));
      grown.set(model);
      for (let r = 0; r < RECORDS; r++) {
        for (let i = 0; i < RECORD; i++) grown[r * RECORD + i] = recordByte(r % WORKERS, k, r, i);
      }
      assert.equal(firstDifference(server.contents(fid), grown), -1, `server contents of file ${k}`);
    }
  } finally {
    await pool.destroy();
    await cm.close();
  }
});
