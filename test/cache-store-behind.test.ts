import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CacheManager, MemoryFileServer } from '../src/index.js';
import { fidOf, firstDifference, patterned } from './helpers/files.js';
import { seededRandom } from './helpers/random.js';

const KiB = 1024;
const CHUNK = 64 * KiB;

function setup(serverOptions: ConstructorParameters<typeof MemoryFileServer>[0] = {}, cacheOptions = {}) {
  const server = new MemoryFileServer(serverOptions);
  const fid = fidOf(700);
  const contents = patterned(300 * KiB, 70);
  server.createFile(fid, contents);
  const cm = CacheManager.create(server.connect(), { cacheSize: 8192 * KiB, chunkSize: CHUNK, ...cacheOptions });
  return { server, fid, contents, cm };
}

test('store-behind: a chunk of dirty data is stored while writes go on; flush waits for it', async () => {
  const { server, fid, contents, cm } = setup({ rpcLatencyMs: 5 });
  try {
    const written = patterned(4 * CHUNK, 71);
    for (let off = 0; off < written.length; off += 16 * KiB) {
      await cm.write(fid, off, written.subarray(off, off + 16 * KiB));
    }
    const model = contents.slice();
    model.set(written);
    assert.ok(cm.stats().storeBehindBatches >= 1, 'stores began before any flush');
    assert.ok(server.counters.storeData >= 1, 'the server was asked before any flush');
    // flush now, with background stores likely still in flight: it must wait for them.
    await cm.flush(fid);
    assert.equal(firstDifference(server.contents(fid), model), -1, 'after flush the server holds every byte');
  } finally {
    await cm.close();
  }
});

test('store-behind with injected failures: data stays dirty, flush stores it, the server ends equal to the model', async () => {
  const { next, seed } = seededRandom();
  console.log(`# seed ${seed} (replay: CMKIT_SEED=${seed} node --test dist/test/cache-store-behind.test.js)`);
  const { server, fid, contents, cm } = setup({ rpcLatencyMs: 1 });
  try {
    let model = contents.slice();
    for (let op = 0; op < 1000; op++) {
      const r = next() % 100;
      if (r < 3) {
        server.injectFault({ rpc: 'storeData', kind: (['error', 'timeout', 'busy'] as const)[next() % 3]!, count: 1 + (next() % 3) });
      } else if (r < 12) {
        const length = next() % (600 * KiB);
        await cm.truncate(fid, length);
        const m = new Uint8Array(length);
        m.set(model.subarray(0, Math.min(length, model.length)));
        model = m;
      } else {
        const offset = next() % (512 * KiB);
        const data = patterned(1 + (next() % (40 * KiB)), next());
        await cm.write(fid, offset, data);
        if (offset + data.length > model.length) {
          const m = new Uint8Array(offset + data.length);
          m.set(model);
          model = m;
        }
        model.set(data, offset);
      }
      if (op % 50 === 49) await cm.backgroundSettled();
    }
    await cm.backgroundSettled();
    const stats = cm.stats();
    assert.ok(stats.storeBehindBatches > 5, `store-behind ran (${stats.storeBehindBatches} batches)`);
    assert.ok(stats.storeBehindFailures > 0, `some background stores failed (${stats.storeBehindFailures})`);
    // Faults left over fail the flush; it rejects and loses nothing, and a later one stores it.
    for (let attempt = 0; ; attempt++) {
      try {
        await cm.flush(fid);
        break;
      } catch (e) {
        assert.ok(attempt < 200, `flush kept failing: ${String(e)}`);
      }
    }
    assert.equal(server.status(fid).length, model.length);
    assert.equal(firstDifference(server.contents(fid), model), -1, 'the server holds exactly the model');
    assert.equal(firstDifference(await cm.read(fid, 0, model.length), model), -1);
  } finally {
    server.clearFaults();
    await cm.close();
  }
});

test('a background store that fails reports through flush: flush rejects while the server fails, and resolves once the data is stored', async () => {
  const { server, fid, contents, cm } = setup();
  try {
    server.injectFault({ rpc: 'storeData', kind: 'error', count: 1_000 });
    const written = patterned(2 * CHUNK, 72);
    await cm.write(fid, 0, written);
    await cm.backgroundSettled();
    assert.ok(cm.stats().storeBehindFailures >= 1);
    await assert.rejects(cm.flush(fid), { name: 'ServerError', code: 'ERR_CMKIT_SERVER_ERROR' });
    assert.equal(firstDifference(server.contents(fid), contents), -1, 'nothing reached the server');
    server.clearFaults();
    await cm.flush(fid);
    const model = contents.slice();
    model.set(written);
    assert.equal(firstDifference(server.contents(fid), model), -1, 'every written byte reached the server');
  } finally {
    await cm.close();
  }
});

test('store-behind has no retry permission: a busy server fails it at once, no backoff slept', async () => {
  // A foreground retry would sleep 200 ms first; the background store must not.
  const { server, fid, contents, cm } = setup({}, { busyDeadlineMs: 10_000, busyDelayMs: 200 });
  try {
    server.injectFault({ rpc: 'storeData', kind: 'busy', count: 1 });
    const written = patterned(CHUNK, 73);
    const t0 = performance.now();
    await cm.write(fid, 0, written);
    await cm.backgroundSettled();
    const elapsed = performance.now() - t0;
    const stats = cm.stats();
    assert.equal(stats.storeBehindFailures, 1, 'the background store failed on busy');
    assert.equal(stats.busyRetries, 0, 'and did not retry');
    assert.ok(elapsed < 200, `no backoff was slept (${elapsed.toFixed(1)} ms)`);
    await cm.flush(fid);
    const model = contents.slice();
    model.set(written);
    assert.equal(firstDifference(server.contents(fid), model), -1);
  } finally {
    await cm.close();
  }
});

test('storeBehind: false stores nothing before flush', async () => {
  const { server, fid, cm } = setup({}, { storeBehind: false });
  try {
    await cm.write(fid, 0, patterned(4 * CHUNK, 74));
    await cm.backgroundSettled();
    assert.equal(server.counters.storeData, 0);
    await cm.flush(fid);
    assert.ok(server.counters.storeData > 0);
  } finally {
    await cm.close();
  }
});
