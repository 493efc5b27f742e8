import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { CacheManager, DirectoryFileServer, MemoryFileServer } from '../src/index.js';
import { fidOf, firstDifference, patterned } from './helpers/files.js';

const KiB = 1024;

/**
 * A file changed outside while the cache holds unstored writes to it: the store writes
 * only the bytes written (never the clean cached bytes around them) over the file as it
 * now is, leaves its length to that file, and counts a conflict.
 */
for (const noticed of [false, true]) {
  test(`a backing file truncated outside under dirty data${noticed ? ', the change seen before the store' : ''}: our bytes at their offsets over the truncated file, zeros between, one conflict`, async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'cmkit-conflict-'));
    const file = path.join(root, 'f');
    writeFileSync(file, patterned(1024 * KiB, 7));
    const server = new DirectoryFileServer(root);
    const fid = await server.lookup('f');
    const cm = CacheManager.create(server.connect(), { cacheSize: 4096 * KiB, chunkSize: 64 * KiB, prefetch: false, storeBehind: false });
    try {
      await cm.read(fid, 0, 1024 * KiB); // every block cached and clean
      const a = patterned(4 * KiB, 8);
      const b = patterned(10, 9);
      await cm.write(fid, 100 * KiB, a); // whole blocks
      await cm.write(fid, 500 * KiB + 3, b); // 10 bytes inside a cached block
      truncateSync(file, 0);
      if (noticed) {
        await server.revalidate(fid); // breaks the callback: the cache asks again
        assert.equal((await cm.stat(fid)).length, 1024 * KiB, 'our unstored view still decides the length');
      }
      await cm.flush(fid);
      const expected = new Uint8Array(500 * KiB + 13);
      expected.set(a, 100 * KiB);
      expected.set(b, 500 * KiB + 3);
      assert.equal(firstDifference(new Uint8Array(readFileSync(file)), expected), -1, 'exactly our bytes, zeros between, no old tail');
      assert.equal(cm.stats().storeConflicts, 1);
      assert.equal((await cm.stat(fid)).length, expected.length, 'the cache shows the file as it now is');
      assert.equal(firstDifference(await cm.read(fid, 0, 2048 * KiB), expected), -1);
    } finally {
      await cm.close();
      rmSync(root, { recursive: true, force: true });
    }
  });
}

test('a store sends only the bytes written: a 10-byte write into a cached block is a 10-byte store', async () => {
  const server = new MemoryFileServer();
  const fid = fidOf(970);
  server.createFile(fid, patterned(64 * KiB, 1));
  const cm = CacheManager.create(server.connect(), { cacheSize: 4096 * KiB, chunkSize: 64 * KiB, prefetch: false, storeBehind: false });
  try {
    await cm.read(fid, 0, 64 * KiB);
    await cm.write(fid, 5000, patterned(10, 2));
    await cm.write(fid, 5005, patterned(10, 3)); // overlaps: one range, 5000..5015
    await cm.write(fid, 9000, patterned(4096, 4)); // spans two blocks: one contiguous call
    const before = server.counters.bytesStored;
    await cm.flush(fid);
    assert.equal(server.counters.bytesStored - before, 15 + 4096);
    assert.equal(server.counters.storeData, 2);
    assert.equal(cm.stats().storeConflicts, 0);
  } finally {
    await cm.close();
  }
});
