import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CacheManager, CachePool, MemoryFileServer } from '../src/index.js';
import { fidOf, firstDifference, patterned } from './helpers/files.js';

const KiB = 1024;
const BLOCK = 4 * KiB;

test('one user floods the pool: another user\'s reads complete during the flood, and the flooder stays within its caps', async () => {
  const server = new MemoryFileServer({ rpcLatencyMs: 1 });
  const floodFid = fidOf(800);
  const readFid = fidOf(801);
  const FLOOD = 2000;
  server.createFile(floodFid, patterned(FLOOD * BLOCK, 80));
  const readContents = patterned(1024 * KiB, 81);
  server.createFile(readFid, readContents);
  const cm = CacheManager.create(server.connect(), { cacheSize: 16 * 1024 * KiB, chunkSize: 64 * KiB, prefetch: false });
  const n2 = 4;
  const n1 = 2;
  const pool = new CachePool(cm, { threads: 2, slots: 8, n2, n1 });
  try {
    let floodDone = 0;
    const flood = Array.from({ length: FLOOD }, (_, k) => pool.prefetch('flooder', floodFid, k * BLOCK, BLOCK).then(() => floodDone++));
    // Wait until the flood holds its slots before the reader arrives.
    while (pool.shareStats('flooder').running < n2) await new Promise((r) => setTimeout(r, 1));

    const READS = 20;
    for (let k = 0; k < READS; k++) {
      const offset = ((k * 37) % 256) * BLOCK;
      const got = await pool.read('reader', readFid, offset, BLOCK);
      assert.equal(firstDifference(got, readContents.subarray(offset, offset + BLOCK)), -1, `read ${k} is right`);
    }
    const floodLeft = FLOOD - floodDone;
    assert.ok(floodLeft > FLOOD / 4, `the reads finished while the flood was still running (${floodLeft} of ${FLOOD} left)`);

    await Promise.all(flood);
    const flooder = pool.shareStats('flooder');
    assert.equal(flooder.started, FLOOD);
    assert.ok(flooder.peakRunning <= n2, `the flooder never ran more than n2 = ${n2} (peak ${flooder.peakRunning})`);
    assert.equal(flooder.peakRunning, n2, 'and did use n2 when alone');
    assert.ok(flooder.peakStartedWhileOthersStarved <= n1, `nor was brought past n1 = ${n1} while the reader starved`);
    assert.equal(pool.shareStats('reader').started, READS);
    assert.ok(server.counters.fetchData >= FLOOD, 'every flooded fetch reached the server');
  } finally {
    await pool.close();
    await cm.close();
  }
});

test('background work a pool request causes runs in the pool, in the requester\'s share', async () => {
  const server = new MemoryFileServer();
  const fid = fidOf(810);
  server.createFile(fid, new Uint8Array(0));
  const cm = CacheManager.create(server.connect(), { cacheSize: 4096 * KiB, chunkSize: 64 * KiB });
  const pool = new CachePool(cm, { threads: 2, slots: 8 });
  try {
    const written = patterned(512 * KiB, 82);
    for (let off = 0; off < written.length; off += 32 * KiB) await pool.write('writer', fid, off, written.subarray(off, off + 32 * KiB));
    // Store-behind jobs come back from the workers to the pool, charged to 'writer'. Let
    // them run before the flush: a flush that comes first stores their data itself.
    const busy = (): boolean => pool.stats().backgroundJobs === 0 || pool.stats().running + pool.stats().waiting > 0;
    for (let i = 0; i < 1000 && (busy() || cm.stats().storeBehindBatches === 0); i++) await new Promise((r) => setTimeout(r, 2));
    assert.ok(pool.stats().backgroundJobs > 0, 'the workers handed store-behind jobs to the pool');
    assert.ok(cm.stats().storeBehindBatches > 0, 'and the pool ran them');
    await pool.flush('writer', fid);
    assert.ok(pool.shareStats('writer').started > 16 + 1, 'the writer\'s share ran its requests and its background jobs');
    assert.equal(firstDifference(server.contents(fid), written), -1);
  } finally {
    await pool.close();
    await cm.close();
  }
});

test('pool bad input and use after close are clear errors', async () => {
  const server = new MemoryFileServer();
  const fid = fidOf(820);
  server.createFile(fid, patterned(8 * KiB, 83));
  const cm = CacheManager.create(server.connect());
  assert.throws(() => new CachePool(cm, { n1: 5, n2: 5 }), { name: 'RangeError', message: /options\.n1/ });
  assert.throws(() => new CachePool(cm, { slots: 1 }), { name: 'RangeError', message: /options\.slots/ });
  assert.throws(() => new CachePool(cm, { shareBy: 'group' as 'user' }), { name: 'TypeError', message: /options\.shareBy/ });
  const pool = new CachePool(cm, { threads: 1, slots: 4 });
  try {
    await assert.rejects(pool.read(42 as unknown as string, fid, 0, 1), { name: 'TypeError', message: /user/ });
    assert.throws(() => pool.read('u', {} as typeof fid, 0, 1), { name: 'TypeError', message: /fid/ });
    assert.throws(() => pool.prefetch('u', fid, -1, 1), { name: 'RangeError', message: /offset/ });
    await assert.rejects(pool.read('u', fid, -1, 1), /offset/);
    assert.equal((await pool.read('u', fid, 0, 4)).length, 4);
  } finally {
    await pool.close();
  }
  await assert.rejects(pool.read('u', fid, 0, 1), { code: 'ERR_CMKIT_CLOSED' });
  await cm.close();
});
