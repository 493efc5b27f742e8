import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CacheManager, MemoryFileServer } from '../src/index.js';
import { fidOf, firstDifference } from './helpers/files.js';
import { seededRandom } from './helpers/random.js';

const BLOCK = 512;
const CHUNK = 2048;
const OPS = Number(process.env['CMKIT_MODEL_OPS'] ?? 10_000);

/** A file's bytes as the client should see them. */
class ModelFile {
  bytes = new Uint8Array(0);

  write(offset: number, data: Uint8Array): void {
    if (offset + data.length > this.bytes.length) this.setLength(offset + data.length);
    this.bytes.set(data, offset);
  }

  setLength(length: number): void {
    const next = new Uint8Array(length);
    next.set(this.bytes.subarray(0, Math.min(length, this.bytes.length)));
    this.bytes = next;
  }
}

test(`randomized: ${OPS} mixed operations never return a wrong byte`, async (t) => {
  const { next, seed } = seededRandom();
  t.diagnostic(`seed ${seed} (replay: CMKIT_SEED=${seed} node --test dist/test/cache-random-model.test.js)`);
  const rand = (n: number): number => next() % n;

  const server = new MemoryFileServer();
  const other = server.connect();
  // Sizes straddle block and chunk boundaries.
  const sizes = [BLOCK - 1, CHUNK + 1, 5 * CHUNK + BLOCK / 2];
  const fids = sizes.map((_, k) => fidOf(100 + k));
  const models = sizes.map((size, k) => {
    const m = new ModelFile();
    const initial = new Uint8Array(size).map(() => rand(256));
    m.write(0, initial);
    server.createFile(fids[k]!, initial);
    return m;
  });
  // Eight chunks of cache for three files: eviction and store-before-reuse all the time.
  const cm = CacheManager.create(server.connect(), { blockSize: BLOCK, chunkSize: CHUNK, cacheSize: 8 * CHUNK, maxReadahead: 2 * CHUNK });
  const counts: Record<string, number> = {};
  const nextRead = fids.map(() => 0);
  try {
    for (let op = 0; op < OPS; op++) {
      const k = rand(fids.length);
      const fid = fids[k]!;
      const model = models[k]!;
      const size = model.bytes.length;
      const kind = rand(100);
      const where = `seed ${seed}, op ${op}`;
      if (kind < 40) {
        // Reads often continue where the last ended, so readahead runs too.
        const offset = rand(2) === 0 ? Math.min(nextRead[k]!, size) : rand(size + BLOCK);
        const length = rand(3 * CHUNK);
        nextRead[k] = offset + length;
        const got = await cm.read(fid, offset, length);
        const want = model.bytes.subarray(offset, offset + length);
        assert.equal(got.length, want.length, `${where}: read length`);
        const d = firstDifference(got, want);
        assert.equal(d, -1, `${where}: wrong byte at ${offset + d} of file ${k}`);
        counts['read'] = (counts['read'] ?? 0) + 1;
      } else if (kind < 70) {
        const offset = rand(size + CHUNK);
        const data = new Uint8Array(rand(2 * CHUNK) + 1).map(() => rand(256));
        await cm.write(fid, offset, data);
        model.write(offset, data);
        counts['write'] = (counts['write'] ?? 0) + 1;
      } else if (kind < 78) {
        const length = rand(size + CHUNK);
        await cm.truncate(fid, length);
        model.setLength(length);
        counts['truncate'] = (counts['truncate'] ?? 0) + 1;
      } else if (kind < 86) {
        await cm.flush(fid);
        assert.equal(firstDifference(server.contents(fid), model.bytes), -1, `${where}: server after flush`);
        counts['flush'] = (counts['flush'] ?? 0) + 1;
      } else if (kind < 93) {
        await cm.evict(fid);
        counts['evict'] = (counts['evict'] ?? 0) + 1;
      } else {
        // A second client writes the file; ours is flushed first so the outcome is defined.
        await cm.flush(fid);
        const offset = rand(size + BLOCK);
        const data = new Uint8Array(rand(CHUNK) + 1).map(() => rand(256));
        const truncPos = rand(4) === 0 ? rand(size + 1) : undefined;
        await other.storeData(fid, offset, data, truncPos === undefined ? {} : { truncPos });
        if (truncPos !== undefined) model.setLength(Math.min(truncPos, model.bytes.length));
        model.write(offset, data);
        counts['second client'] = (counts['second client'] ?? 0) + 1;
      }
      const st = await cm.stat(fid);
      assert.equal(st.length, model.bytes.length, `${where}: length of file ${k}`);
    }
    await cm.flushAll();
    for (const [k, fid] of fids.entries()) {
      assert.equal(firstDifference(server.contents(fid), models[k]!.bytes), -1, `seed ${seed}: final server contents of file ${k}`);
    }
    t.diagnostic(`operations: ${JSON.stringify(counts)}; stats: ${JSON.stringify(cm.stats())}`);
  } finally {
    await cm.close();
  }
});
