import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CacheManager, MemoryFileServer, ServerError } from '../src/index.js';
import { fidOf, firstDifference, patterned } from './helpers/files.js';

const KiB = 1024;

function setup(options: ConstructorParameters<typeof MemoryFileServer>[0] = {}, cacheOptions = {}) {
  const server = new MemoryFileServer(options);
  const fid = fidOf(500);
  const contents = patterned(200 * KiB, 5);
  server.createFile(fid, contents);
  const cm = CacheManager.create(server.connect(), { cacheSize: 4096 * KiB, chunkSize: 64 * KiB, ...cacheOptions });
  return { server, fid, contents, cm };
}

for (const kind of ['error', 'timeout'] as const) {
  test(`a fetchData ${kind} rejects the read, marks nothing valid, and the next read fetches again`, async () => {
    const { server, fid, contents, cm } = setup();
    try {
      await cm.stat(fid);
      server.injectFault({ rpc: 'fetchData', kind });
      await assert.rejects(cm.read(fid, 0, 100 * KiB), (e: Error) => e instanceof ServerError && e.kind === kind);
      const attempts = server.counters.fetchData;
      const got = await cm.read(fid, 0, 100 * KiB);
      assert.ok(server.counters.fetchData > attempts, 'fetched again: the failed run was not marked valid');
      assert.equal(firstDifference(got, contents.subarray(0, 100 * KiB)), -1);
    } finally {
      await cm.close();
    }
  });
}

test('a failed store keeps the data dirty; the flush rejects and a later flush stores every byte', async () => {
  // Store-behind off: this is about the flush's own store; store-behind has its own test.
  const { server, fid, contents, cm } = setup({}, { cacheSize: 1024 * KiB, storeBehind: false });
  try {
    const written = patterned(150 * KiB, 6);
    await cm.write(fid, 10 * KiB, written);
    server.injectFault({ rpc: 'storeData', kind: 'error', count: 2 });
    await assert.rejects(cm.flush(fid), { name: 'ServerError', code: 'ERR_CMKIT_SERVER_ERROR' });
    assert.equal(firstDifference(server.contents(fid), contents), -1, 'the server still has the old bytes');
    // Pressure on the cache must not evict what was not stored.
    assert.equal(await cm.evict(fid) >= 0, true);
    const other = fidOf(501);
    server.createFile(other, patterned(900 * KiB, 7));
    await cm.read(other, 0, 900 * KiB);
    const model = contents.slice();
    model.set(written, 10 * KiB);
    assert.equal(firstDifference(await cm.read(fid, 0, 200 * KiB), model), -1, 'the cache still returns what was written');
    await assert.rejects(cm.flush(fid), { code: 'ERR_CMKIT_SERVER_ERROR' });
    await cm.flush(fid);
    assert.equal(firstDifference(server.contents(fid), model), -1, 'every written byte reached the server');
  } finally {
    await cm.close();
  }
});

test('a busy server: foreground reads retry with backoff and succeed', async () => {
  const { server, fid, contents, cm } = setup();
  try {
    await cm.stat(fid);
    server.injectFault({ rpc: 'fetchData', kind: 'busy', count: 3 });
    const got = await cm.read(fid, 0, 64 * KiB);
    assert.equal(firstDifference(got, contents.subarray(0, 64 * KiB)), -1);
    assert.equal(cm.stats().busyRetries, 3);
  } finally {
    await cm.close();
  }
});

test('a busy server past the deadline: the foreground operation fails with busy', async () => {
  const { server, fid, cm } = setup({}, { busyDeadlineMs: 30, busyDelayMs: 5 });
  try {
    server.injectFault({ rpc: 'fetchStatus', kind: 'busy', count: 1_000 });
    const t0 = performance.now();
    await assert.rejects(cm.read(fid, 0, 10), { code: 'ERR_CMKIT_SERVER_BUSY' });
    const ms = performance.now() - t0;
    assert.ok(ms >= 25 && ms < 1000, `gave up at the deadline (${ms.toFixed(0)} ms)`);
  } finally {
    await cm.close();
  }
});

test('background prefetch never sleeps for a retry: a busy answer fails it at once', async () => {
  const { server, fid, contents, cm } = setup({}, { busyDeadlineMs: 10_000, busyDelayMs: 300 });
  try {
    // The first read fetches its chunk; the readahead it starts meets a busy server.
    server.injectFault({ rpc: 'fetchData', kind: 'busy', count: 1 });
    const beforeRetries = cm.stats().busyRetries;
    await cm.read(fid, 0, 16 * KiB); // the demand fetch retries once (foreground)
    assert.equal(cm.stats().busyRetries, beforeRetries + 1);
    server.injectFault({ rpc: 'fetchData', kind: 'busy', count: 1_000 });
    const t0 = performance.now();
    await cm.read(fid, 16 * KiB, 16 * KiB); // cached; starts more readahead
    await cm.read(fid, 32 * KiB, 32 * KiB);
    await cm.close(); // waits for background work
    const ms = performance.now() - t0;
    const stats = cm.stats();
    assert.ok(stats.backgroundFailures >= 1, 'the prefetch failed');
    assert.equal(stats.busyRetries, beforeRetries + 1, 'no retry in the background');
    assert.ok(ms < 250, `no backoff sleep (${ms.toFixed(1)} ms, one backoff is 300 ms)`);
    assert.ok(contents.length > 0);
  } finally {
    await cm.close();
  }
});
