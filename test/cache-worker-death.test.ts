import assert from 'node:assert/strict';
import { once } from 'node:events';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';

import { CacheManager, MemoryFileServer } from '../src/index.js';
import { BufferState, HEADER_I32 } from '../src/cache/layout.js';
import { fidOf, patterned } from './helpers/files.js';

/** Polls until `ready()` holds; a slow machine gets up to five seconds. */
async function until(ready: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !ready(); waited += 5) {
    if (waited > 5000) throw new Error(`timed out waiting until ${what}`);
    await sleep(5);
  }
}

test('a worker terminated while its fetch is in flight: another reader takes the buffer back', async () => {
  const server = new MemoryFileServer({ rpcLatencyMs: 300 });
  const fid = fidOf(900);
  const contents = patterned(64 * 1024, 9);
  server.createFile(fid, contents);
  const cm = CacheManager.create(server.connect(), { cacheSize: 1 << 20, chunkSize: 16 * 1024, prefetch: false });
  try {
    await cm.stat(fid); // the status is shared: the victim's read goes straight to fetching
    const victim = new Worker(path.join(__dirname, 'workers', 'cache-victim.js'), {
      workerData: { cache: cm.descriptor, fid: fid.toJSON() },
    });
    await once(victim, 'message');
    const { views, buffers } = cm.unsafeExposeInternals();
    const busy = (): number => {
      let n = 0;
      for (let s = 0; s < views.versions.length; s++) if ((views.headers[s * HEADER_I32]! & BufferState.Busy) !== 0) n++;
      return n;
    };
    await until(() => busy() > 0 && server.counters.fetchData > 0, 'the victim has claimed buffers and asked the server');
    await victim.terminate();

    const got = await cm.read(fid, 0, 4096);
    assert.deepEqual(got, contents.subarray(0, 4096), 'the right bytes, fetched again');
    assert.ok(cm.stats().claimsTakenBack >= 1, 'a claim of the dead worker was taken back');
    await sleep(400); // let the victim's orphaned reply arrive and go nowhere
    assert.equal(busy(), 0, 'no buffer is left claimed');
    assert.equal(buffers.stats().totalRefs, 0, 'no reference is left held');
  } finally {
    await cm.close();
  }
});

test('a worker terminated while its store is in flight: the next flush stores what it was storing', async () => {
  const server = new MemoryFileServer({ rpcLatencyMs: 300 });
  const fid = fidOf(901);
  server.createFile(fid, new Uint8Array(64 * 1024));
  const cm = CacheManager.create(server.connect(), { cacheSize: 1 << 20, chunkSize: 64 * 1024 });
  try {
    await cm.stat(fid);
    const written = patterned(64 * 1024, 10);
    // The victim's store is answered with an error, after it is gone: only a store made
    // again can put these bytes on the server.
    server.injectFault({ rpc: 'storeData', kind: 'error' });
    const victim = new Worker(path.join(__dirname, 'workers', 'flush-victim.js'), {
      workerData: { cache: cm.descriptor, fid: fid.toJSON(), bytes: written },
    });
    await once(victim, 'message');
    await until(() => server.counters.storeData > 0, 'the victim\'s store is on the wire');
    await victim.terminate();

    await cm.flush(fid);
    assert.deepEqual(server.contents(fid), written, 'every byte the victim wrote reached the server');
    assert.equal(cm.stats().batchesReclaimed, 1);
    const { buffers } = cm.unsafeExposeInternals();
    assert.equal(buffers.stats().totalRefs, 0, 'no reference is left held');
  } finally {
    await cm.close();
  }
});
