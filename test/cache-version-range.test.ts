import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CacheManager, MemoryFileServer } from '../src/index.js';
import { nextRange, isBufferValid } from '../src/cache/version-range.js';
import { HEADER_I32 } from '../src/cache/layout.js';
import { fidOf, patterned } from './helpers/files.js';

test('nextRange: own stores move only dataVersion; foreign changes raise the low end', () => {
  const r = { dataVersion: 5, bufDataVersionLow: 3 };
  assert.deepEqual(nextRange(r, 5, 0), { range: r, change: 'unchanged' });
  assert.deepEqual(nextRange(r, 6, 1), { range: { dataVersion: 6, bufDataVersionLow: 3 }, change: 'ours' });
  assert.deepEqual(nextRange(r, 7, 1), { range: { dataVersion: 7, bufDataVersionLow: 7 }, change: 'theirs' });
  assert.deepEqual(nextRange({ dataVersion: -1, bufDataVersionLow: 0 }, 4, 0).range, { dataVersion: 4, bufDataVersionLow: 4 });
  assert.ok(isBufferValid(3, 4, 6) && !isBufferValid(3, 2, 6) && !isBufferValid(3, 7, 6));
});

/**
 * Writes one block of a file with n cached valid buffers and stores it; returns how many
 * buffer headers or versions changed and the RPCs it took.
 */
async function writeOneBlockAndStore(n: number): Promise<{ touched: number; fetches: number; kept: number }> {
  const blockSize = 512;
  const server = new MemoryFileServer();
  const fid = fidOf(n);
  const contents = patterned(n * blockSize, n);
  server.createFile(fid, contents);
  const cm = CacheManager.create(server.connect(), {
    blockSize,
    chunkSize: 64 * 1024,
    cacheSize: Math.max(n * blockSize * 2, 4 * 64 * 1024),
    prefetch: false,
  });
  try {
    const all = await cm.read(fid, 0, contents.length);
    assert.deepEqual(all, contents);
    const { views } = cm.unsafeExposeInternals();
    const headers = views.headers.slice();
    const versions = views.versions.slice();
    server.resetCounters();

    await cm.write(fid, 3 * blockSize, new Uint8Array(blockSize).fill(0xab));
    await cm.flush(fid);

    let touched = 0;
    for (let slot = 0; slot < versions.length; slot++) {
      const h = slot * HEADER_I32;
      const changed =
        views.versions[slot] !== versions[slot] ||
        views.headers.subarray(h, h + HEADER_I32).some((w, k) => w !== headers[h + k]);
      if (changed) touched++;
    }
    const again = await cm.read(fid, 0, contents.length);
    contents.fill(0xab, 3 * blockSize, 4 * blockSize);
    assert.deepEqual(again, contents, 'every byte is right after the store');
    return { touched, fetches: server.counters.fetchData, kept: cm.stats().buffersKeptValid };
  } finally {
    await cm.close();
  }
}

test('our own store keeps every cached buffer valid, touching a number of buffers independent of N', async () => {
  const small = await writeOneBlockAndStore(10);
  const large = await writeOneBlockAndStore(100_000);
  for (const [n, r] of [[10, small], [100_000, large]] as const) {
    assert.equal(r.fetches, 0, `N=${n}: no buffer was fetched again`);
    assert.equal(r.kept, n, `N=${n}: all ${n} buffers reported kept valid`);
  }
  assert.ok(small.touched <= 2, `N=10 touched ${small.touched} buffers`);
  assert.equal(large.touched, small.touched, 'N=10^5 touches as many buffers as N=10');
});

test('a second client\'s write invalidates our old data at the next status check', async () => {
  const server = new MemoryFileServer();
  const fid = fidOf(1);
  server.createFile(fid, patterned(20_000, 1));
  const cm = CacheManager.create(server.connect(), { cacheSize: 1 << 20, chunkSize: 16 * 1024 });
  const other = server.connect();
  try {
    assert.deepEqual(await cm.read(fid, 0, 20_000), patterned(20_000, 1));
    const fetchesBefore = server.counters.fetchData;
    assert.deepEqual(await cm.read(fid, 100, 50), patterned(20_000, 1).subarray(100, 150), 'cached');
    assert.equal(server.counters.fetchData, fetchesBefore, 'served from the cache');

    const theirs = patterned(30_000, 2);
    await other.storeData(fid, 0, theirs, { truncPos: 0 });
    const now = await cm.read(fid, 0, 30_000);
    assert.deepEqual(now, theirs, 'the new bytes, not the old');
    assert.ok(server.counters.fetchData > fetchesBefore, 'fetched again');
    assert.ok(cm.stats().buffersInvalidated >= 0);
    assert.deepEqual(await cm.stat(fid), { dataVersion: 2, length: 30_000 });
  } finally {
    await cm.close();
  }
});
