import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CacheManager, MemoryFileServer } from '../src/index.js';
import { fidOf, firstDifference, patterned } from './helpers/files.js';

const MiB = 1024 * 1024;

test('copy over an existing file (truncate to 0, write it all, flush) fetches nothing', async () => {
  const server = new MemoryFileServer();
  const fid = fidOf(7);
  server.createFile(fid, patterned(8 * MiB, 1));
  const cm = CacheManager.create(server.connect(), { cacheSize: 16 * MiB, prefetch: true });
  try {
    const source = patterned(8 * MiB + 1234, 2); // not a whole number of blocks
    await cm.truncate(fid, 0);
    for (let off = 0; off < source.length; off += 64 * 1024) {
      await cm.write(fid, off, source.subarray(off, off + 64 * 1024));
    }
    await cm.flush(fid);
    assert.equal(server.counters.fetchData, 0, 'no fetchData RPC');
    assert.equal(server.counters.bytesFetched, 0, 'no byte fetched');
    assert.equal(firstDifference(server.contents(fid), source), -1, 'the server holds the source');
    assert.equal(server.status(fid).length, source.length);
  } finally {
    await cm.close();
  }
});

test('bytes past a pending truncation are zeros made locally, never fetched', async () => {
  const server = new MemoryFileServer();
  const fid = fidOf(8);
  const original = patterned(100_000, 3);
  server.createFile(fid, original);
  const cm = CacheManager.create(server.connect(), { cacheSize: MiB, chunkSize: 16 * 1024 });
  try {
    await cm.truncate(fid, 10_000);
    await cm.truncate(fid, 50_000); // extend again: 10,000 .. 50,000 must read as zeros
    const got = await cm.read(fid, 0, 60_000);
    assert.equal(got.length, 50_000);
    assert.equal(firstDifference(got.subarray(0, 10_000), original.subarray(0, 10_000)), -1);
    assert.ok(got.subarray(10_000).every((b) => b === 0), 'zeros past the truncation');
    assert.equal(server.counters.bytesFetched <= 16 * 1024, true, 'only the chunk below the truncation was fetched');
    await cm.flush(fid);
    const stored = server.contents(fid);
    assert.equal(stored.length, 50_000);
    assert.equal(firstDifference(stored, got), -1, 'the server agrees after the store');
  } finally {
    await cm.close();
  }
});

test('a cold sequential read prefetches ahead of the reader and every byte matches', async () => {
  const server = new MemoryFileServer({ rpcLatencyMs: 1 });
  const fid = fidOf(9);
  const contents = patterned(16 * MiB, 4);
  server.createFile(fid, contents);
  const cm = CacheManager.create(server.connect(), { cacheSize: 32 * MiB, maxReadahead: 2 * MiB });
  try {
    const step = 64 * 1024;
    for (let off = 0; off < contents.length; off += step) {
      const got = await cm.read(fid, off, step);
      assert.equal(firstDifference(got, contents.subarray(off, off + step)), -1, `bytes at ${off}`);
    }
    const s = cm.stats();
    assert.ok(s.prefetchesIssued > 0, 'prefetches were issued');
    const blocks = contents.length / cm.blockSize;
    assert.ok(s.prefetchBlocksUsed > blocks * 0.8, `most blocks came from prefetch (${s.prefetchBlocksUsed} of ${blocks})`);
    assert.ok(s.hits > s.misses * 10, `reads hit the cache (hits ${s.hits}, misses ${s.misses})`);
    assert.ok(server.counters.bytesFetched <= contents.length + 2 * MiB, 'nothing fetched twice, nothing far past EOF');
  } finally {
    await cm.close();
  }
});

test('eviction recycles clean buffers and keeps dirty ones until stored', async () => {
  const server = new MemoryFileServer();
  const fids = [fidOf(20), fidOf(21)];
  for (const [k, fid] of fids.entries()) server.createFile(fid, patterned(2 * MiB, 10 + k));
  // A cache of 1 MiB: reading 4 MiB must recycle; writing 3 MiB must store before reuse.
  const cm = CacheManager.create(server.connect(), { cacheSize: MiB, chunkSize: 64 * 1024, prefetch: false });
  try {
    for (const [k, fid] of fids.entries()) {
      const got = await cm.read(fid, 0, 2 * MiB);
      assert.equal(firstDifference(got, patterned(2 * MiB, 10 + k)), -1);
    }
    const written = patterned(3 * MiB, 99);
    await cm.write(fids[0]!, 0, written);
    await cm.flush(fids[0]!);
    assert.equal(firstDifference(server.contents(fids[0]!), written), -1, 'every written byte reached the server');
    assert.equal(cm.unsafeExposeInternals().buffers.stats().recycled > 0, true);
  } finally {
    await cm.close();
  }
});
