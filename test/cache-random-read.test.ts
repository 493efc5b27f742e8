/**
 * A random reader's misses fetch the blocks they touch, not their chunk: rounding a miss
 * up to its chunk is readahead, worth it only for a sequential reader, whose misses still
 * fetch whole chunks. Writes alike: one that needs a block's old bytes fetches that block
 * alone, unless it continues the last write (a copy without O_TRUNC, say).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CacheManager, MemoryFileServer } from '../src/index.js';
import { fidOf, firstDifference, patterned } from './helpers/files.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 64 * KiB;
const CHUNK = MiB;

function setup(n: number): { server: MemoryFileServer; cm: CacheManager; contents: Uint8Array; fid: ReturnType<typeof fidOf> } {
  const server = new MemoryFileServer();
  const fid = fidOf(n);
  const contents = patterned(16 * MiB, n);
  server.createFile(fid, contents);
  const cm = CacheManager.create(server.connect(), { cacheSize: 32 * MiB, blockSize: BLOCK, chunkSize: CHUNK, prefetch: true });
  return { server, cm, contents, fid };
}

test('cold 4 KiB reads at random offsets fetch one block each, every byte right', async () => {
  const { server, cm, contents, fid } = setup(31);
  try {
    // Offsets in distinct blocks, none continuing the last read.
    const offsets = [5 * MiB + 100, 2 * MiB + 70_000, 11 * MiB + 3, 7 * MiB + 60_000, 13 * MiB + 1_000_000];
    for (const off of offsets) {
      const got = await cm.read(fid, off, 4 * KiB);
      assert.equal(firstDifference(got, contents.subarray(off, off + 4 * KiB)), -1, `bytes at ${off}`);
    }
    assert.equal(server.counters.fetchData, offsets.length, 'one fetch per read');
    assert.equal(server.counters.bytesFetched, offsets.length * BLOCK, 'one block per read, not its chunk');
    // A read across a block boundary (inside one chunk) fetches the two blocks, in one run.
    const across = 9 * MiB + BLOCK - 2 * KiB;
    const got = await cm.read(fid, across, 4 * KiB);
    assert.equal(firstDifference(got, contents.subarray(across, across + 4 * KiB)), -1);
    assert.equal(server.counters.fetchData, offsets.length + 1);
    assert.equal(server.counters.bytesFetched, (offsets.length + 2) * BLOCK);
  } finally {
    await cm.close();
  }
});

test('a sequential reader still fetches whole chunks on a miss', async () => {
  const { server, cm, contents, fid } = setup(32);
  try {
    const first = await cm.read(fid, 0, 4 * KiB);
    assert.equal(firstDifference(first, contents.subarray(0, 4 * KiB)), -1);
    assert.ok(server.counters.bytesFetched >= CHUNK, `the first read at 0 fetched its chunk (${server.counters.bytesFetched})`);
    // Continuing reads all the way through: every byte right, nothing fetched twice.
    for (let off = 4 * KiB; off < contents.length; off += 128 * KiB) {
      const n = Math.min(128 * KiB, contents.length - off);
      const got = await cm.read(fid, off, n);
      assert.equal(firstDifference(got, contents.subarray(off, off + n)), -1, `bytes at ${off}`);
    }
    assert.ok(server.counters.bytesFetched <= contents.length, 'nothing fetched twice');
    assert.ok(server.counters.fetchData <= contents.length / CHUNK + 8, `chunk-sized fetches (${server.counters.fetchData} RPCs)`);
  } finally {
    await cm.close();
  }
});

test('a small write into a cold block fetches that block alone', async () => {
  const { server, cm, contents, fid } = setup(33);
  try {
    const at = 6 * MiB + 1234;
    await cm.write(fid, at, patterned(100, 99));
    assert.equal(server.counters.fetchData, 1);
    assert.equal(server.counters.bytesFetched, BLOCK, 'the block the write lands in, not its chunk');
    await cm.flush(fid);
    const expected = contents.slice();
    expected.set(patterned(100, 99), at);
    assert.equal(firstDifference(server.contents(fid), expected), -1);
  } finally {
    await cm.close();
  }
});

test('a sequential writer of partial blocks over a cold file fetches whole chunks', async () => {
  const { server, cm, contents, fid } = setup(34);
  try {
    const piece = 10_000; // never a whole block: each write needs the old bytes around it
    const source = patterned(3 * MiB, 98);
    for (let off = 0; off < source.length; off += piece) await cm.write(fid, off, source.subarray(off, off + piece));
    assert.equal(server.counters.bytesFetched, 3 * CHUNK, 'the chunks it wrote into, each fetched once');
    assert.equal(server.counters.fetchData, 3, 'one fetch per chunk');
    await cm.flush(fid);
    const expected = contents.slice();
    expected.set(source, 0);
    assert.equal(firstDifference(server.contents(fid), expected), -1);
  } finally {
    await cm.close();
  }
});
