import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CacheManager, MemoryFileServer } from '../src/index.js';
import { fidOf, firstDifference, patterned } from './helpers/files.js';

test('prefault touches the cache memory without changing a byte, clean or dirty', async () => {
  const server = new MemoryFileServer();
  const fids = [fidOf(1), fidOf(2)];
  server.createFile(fids[0]!, patterned(300_000, 1));
  server.createFile(fids[1]!, new Uint8Array(0));
  const cm = CacheManager.create(server.connect(), { cacheSize: 4 * 1024 * 1024, storeBehind: false });
  try {
    assert.equal(firstDifference(await cm.read(fids[0]!, 0, 300_000), patterned(300_000, 1)), -1);
    await cm.write(fids[1]!, 0, patterned(100_000, 2)); // dirty, not stored
    const fetched = cm.stats().fetchRpcs;
    cm.prefault();
    assert.equal(firstDifference(await cm.read(fids[0]!, 0, 300_000), patterned(300_000, 1)), -1);
    assert.equal(firstDifference(await cm.read(fids[1]!, 0, 100_000), patterned(100_000, 2)), -1);
    await cm.flush(fids[1]!);
    assert.equal(firstDifference(server.contents(fids[1]!), patterned(100_000, 2)), -1);
    assert.equal(cm.stats().fetchRpcs, fetched, 'nothing was refetched');
  } finally {
    await cm.close();
  }
  assert.throws(() => cm.prefault(), { code: 'ERR_CMKIT_CLOSED' });
});
