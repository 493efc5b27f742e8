import assert from 'node:assert/strict';
import { once } from 'node:events';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';

import { CacheManager, MemoryFileServer } from '../src/index.js';
import type { FetchResult, FileServer, Fid } from '../src/index.js';
import { fidOf, patterned } from './helpers/files.js';

/** A connection whose fetchData replies arrive late, after the server answered them. */
function slowFetches(inner: FileServer, delayMs: number): FileServer {
  return {
    fetchStatus: (fid) => inner.fetchStatus(fid),
    fetchData: async (fid: Fid, offset: number, length: number): Promise<FetchResult> => {
      const reply = await inner.fetchData(fid, offset, length);
      await sleep(delayMs);
      return reply;
    },
    storeData: (fid, offset, data, options) => inner.storeData(fid, offset, data, options),
    onCallbackBreak: (listener) => inner.onCallbackBreak(listener),
  };
}

test('a prefetch served before our own truncating store lands after it: its stale bytes are not kept', async () => {
  const server = new MemoryFileServer();
  const fid = fidOf(800);
  server.createFile(fid, patterned(64 * 1024, 3));
  const cm = CacheManager.create(slowFetches(server.connect(), 50), { cacheSize: 1 << 20, chunkSize: 4096, maxReadahead: 64 * 1024 });
  try {
    await cm.read(fid, 0, 4096); // a sequential start: readahead of the next blocks begins
    await sleep(5); // the readahead's fetch has been served at the old version
    await cm.truncate(fid, 100);
    await cm.write(fid, 30_000, new Uint8Array([7]));
    await cm.flush(fid); // stores truncPos 100 and the byte at 30,000: a newer version
    await sleep(100); // the late readahead reply arrives now
    const got = await cm.read(fid, 0, 30_001);
    const want = new Uint8Array(30_001);
    want.set(patterned(64 * 1024, 3).subarray(0, 100));
    want[30_000] = 7;
    assert.deepEqual(got, want);
    assert.ok(cm.stats().prefetchesIssued > 0, 'the race was set up: a prefetch was in flight');
  } finally {
    await cm.close();
  }
});

test('two flushes of one file: a block written again while the first is storing reaches the server last', async () => {
  const server = new MemoryFileServer();
  const fid = fidOf(801);
  server.createFile(fid, new Uint8Array(8192));
  const inner = server.connect();
  let stores = 0;
  const conn: FileServer = {
    fetchStatus: (f) => inner.fetchStatus(f),
    fetchData: (f, o, l) => inner.fetchData(f, o, l),
    storeData: async (f, o, d, opts) => {
      const first = stores++ === 0;
      if (first) await sleep(50); // the first store is slow on the wire...
      return inner.storeData(f, o, d, opts); // ...and lands after any that overtook it
    },
    onCallbackBreak: (l) => inner.onCallbackBreak(l),
  };
  const cm = CacheManager.create(conn, { cacheSize: 1 << 20, chunkSize: 4096 });
  try {
    await cm.write(fid, 0, new Uint8Array(4096).fill(1));
    const first = cm.flush(fid); // stores the 1s, slowly
    await sleep(5);
    await cm.write(fid, 0, new Uint8Array(4096).fill(2));
    await Promise.all([first, cm.flush(fid)]);
    assert.deepEqual(server.contents(fid).subarray(0, 4096), new Uint8Array(4096).fill(2), 'the newer bytes win');
  } finally {
    await cm.close();
  }
});

test('a truncation made while a truncating store is in flight is not forgotten when that store lands', async () => {
  const server = new MemoryFileServer({ rpcLatencyMs: 30 });
  const fid = fidOf(802);
  server.createFile(fid, patterned(8192, 5));
  const cm = CacheManager.create(server.connect(), { cacheSize: 1 << 20, storeBehind: false });
  try {
    const data = patterned(5000, 6);
    await cm.truncate(fid, 1000);
    await cm.write(fid, 1000, data); // the batch: truncPos 1000, bytes [1000, 6000)
    const flushing = cm.flush(fid);
    await sleep(5); // the store is in flight
    await cm.truncate(fid, 2000); // above the batch's truncPos, below its length
    await flushing;
    await cm.write(fid, 5999, new Uint8Array([7])); // grow again: [2000, 5999) is a hole
    await cm.evict(fid);
    const model = new Uint8Array(6000);
    model.set(patterned(8192, 5).subarray(0, 1000));
    model.set(data.subarray(0, 1000), 1000);
    model[5999] = 7;
    assert.deepEqual(await cm.read(fid, 0, 6000), model, 'the hole reads as zeros, not the stored bytes it replaced');
    await cm.flush(fid);
    assert.deepEqual(server.contents(fid), model, 'and the server ends with the hole');
  } finally {
    await cm.close();
  }
});

test('a cached read racing a writer on another thread returns one write, never a mix', async () => {
  const server = new MemoryFileServer();
  const fid = fidOf(7);
  // Large blocks: the longer each copy, the more a torn one would show.
  const block = 64 * 1024;
  server.createFile(fid, new Uint8Array(block));
  const cm = CacheManager.create(server.connect(), { cacheSize: 16 * block, blockSize: block, prefetch: false });
  await cm.read(fid, 0, block);
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const reader = new Worker(`
    const { CacheManager, Fid } = require(${JSON.stringify(path.join(__dirname, '..', 'src', 'index.js'))});
    const { workerData: d, parentPort } = require('node:worker_threads');
    (async () => {
      const cm = CacheManager.attach(d.cache);
      const fid = Fid.from(d.fid);
      const into = new Uint8Array(d.block);
      let reads = 0, torn = 0;
      while (Atomics.load(d.stop, 0) === 0) {
        await cm.readInto(fid, 0, into);
        reads++;
        if (into[d.block - 1] !== into[0] || into[d.block >> 1] !== into[0]) torn++;
      }
      parentPort.postMessage({ reads, torn });
    })();`, { eval: true, workerData: { cache: cm.descriptor, fid: fid.toJSON(), block, stop } });
  try {
    await new Promise((r) => setTimeout(r, 50));
    for (let k = 1; k <= 3000; k++) await cm.write(fid, 0, new Uint8Array(block).fill(k & 0xff));
  } finally {
    Atomics.store(stop, 0, 1);
  }
  const [{ reads, torn }] = (await once(reader, 'message')) as [{ reads: number; torn: number }];
  assert.ok(reads > 0);
  assert.equal(torn, 0, `${torn} of ${reads} reads mixed two writes`);
  assert.ok(cm.stats().hits > 0, 'the hit path ran');
  await cm.close();
});
