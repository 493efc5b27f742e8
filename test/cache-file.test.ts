/**
 * The cache in a file (cache-file.ts, recover.ts, seal.ts), at the library's level: a
 * second cache on the file the first left serves its blocks after one status, refetches
 * what changed, stores what the first never stored, and never serves a record that was
 * torn or corrupted.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { CacheManager, MemoryFileServer } from '../src/index.js';
import { cacheFileLayout } from '../src/cache/cache-file.js';
import { fidOf, firstDifference, patterned } from './helpers/files.js';
import { seededRandom } from './helpers/random.js';

const OPTIONS = { blockSize: 4096, chunkSize: 64 * 1024, cacheSize: 8 << 20, maxVnodes: 64, prefetch: false };

function scratch(): { dir: string; file: string; done: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cmkit-cachefile-'));
  return { dir, file: path.join(dir, 'cache'), done: () => rmSync(dir, { recursive: true, force: true }) };
}

test('a second cache on the file serves every block after one status, and refetches a file changed meanwhile', async () => {
  const s = scratch();
  try {
    const server = new MemoryFileServer();
    const a = fidOf(1);
    const b = fidOf(2);
    const bytesA = patterned(1 << 20, 1);
    const bytesB = patterned(300_000, 2);
    server.createFile(a, bytesA);
    server.createFile(b, bytesB);
    const first = CacheManager.create(server.connect(), { ...OPTIONS, cacheFile: s.file });
    assert.equal(first.restored?.vnodes, 0);
    assert.deepEqual(await first.read(a, 0, bytesA.length), bytesA);
    assert.deepEqual(await first.read(b, 0, bytesB.length), bytesB);
    await first.close();
    assert.equal(statSync(s.file).mode & 0o777, 0o600);

    // b changes while no cache runs.
    const changed = patterned(300_000, 3);
    await server.connect().storeData(b, 0, changed);
    server.resetCounters();
    const second = CacheManager.create(server.connect(), { ...OPTIONS, cacheFile: s.file });
    try {
      assert.equal(second.restored?.vnodes, 2);
      assert.equal(second.restored?.dropped, 0);
      assert.deepEqual(await second.read(a, 0, bytesA.length), bytesA);
      assert.equal(server.counters.fetchStatus, 1, 'one status for a');
      assert.equal(server.counters.fetchData, 0, 'no data fetched for a');
      assert.deepEqual(await second.read(b, 0, changed.length), changed, 'b as it is now');
      assert.ok(server.counters.fetchData > 0, 'b was fetched again');
    } finally {
      await second.close();
    }
  } finally {
    s.done();
  }
});

test('a file of another geometry or not a cache file is refused, never overwritten; two caches cannot share one', async () => {
  const s = scratch();
  try {
    const server = new MemoryFileServer();
    writeFileSync(s.file, 'my notes');
    assert.throws(() => CacheManager.create(server.connect(), { ...OPTIONS, cacheFile: s.file }), { name: 'RangeError', message: /options\.cacheFile/ });
    rmSync(s.file);
    const one = CacheManager.create(server.connect(), { ...OPTIONS, cacheFile: s.file });
    assert.throws(() => CacheManager.create(server.connect(), { ...OPTIONS, cacheFile: s.file }), /another process has it open|EWOULDBLOCK/);
    await one.close();
    assert.throws(() => CacheManager.create(server.connect(), { ...OPTIONS, blockSize: 8192, cacheFile: s.file }), { name: 'RangeError', message: /blockSize 4096/ });
    assert.throws(() => CacheManager.create(server.connect(), { ...OPTIONS, cacheFile: 42 as unknown as string }), { name: 'TypeError', message: /options\.cacheFile/ });
  } finally {
    s.done();
  }
});

test('records corrupted between two caches: none is served or stored, every byte read is right', async (t) => {
  const rng = seededRandom();
  t.diagnostic(`seed ${rng.seed} (CMKIT_SEED replays)`);
  const geometry = { blockSize: OPTIONS.blockSize, buffers: OPTIONS.cacheSize / OPTIONS.blockSize, maxVnodes: OPTIONS.maxVnodes };
  const { regions } = cacheFileLayout(geometry);
  let droppedSeen = 0;
  for (let round = 0; round < 6; round++) {
    const s = scratch();
    try {
      const server = new MemoryFileServer();
      const files = Array.from({ length: 6 }, (_, k) => ({ fid: fidOf(100 + k), bytes: patterned(20_000 + (rng.next() % 400_000), rng.next()) }));
      for (const f of files) server.createFile(f.fid, f.bytes);
      const first = CacheManager.create(server.connect(), { ...OPTIONS, cacheFile: s.file });
      for (const f of files) await first.read(f.fid, 0, f.bytes.length);
      // Some blocks written and stored: their buffers are dirty, then clean at a version
      // their seal does not name.
      const edit = patterned(10_000, rng.next());
      await first.write(files[0]!.fid, 5_000, edit);
      files[0]!.bytes.set(edit, 5_000);
      await first.close();

      const image = readFileSync(s.file);
      // Flips bytes in every region but the file's own header (a damaged header is
      // refused outright: the geometry test above).
      const hits: string[] = [];
      for (const name of ['vnodes', 'headers', 'versions', 'seals', 'data'] as const) {
        const r = regions[name];
        for (let k = 0; k < 40; k++) {
          const at = r.offset + (rng.next() % Math.min(r.bytes, name === 'data' ? 2_000_000 : r.bytes));
          image[at] = image[at]! ^ (1 + (rng.next() % 255));
          hits.push(`${name}+${at - r.offset}`);
        }
      }
      writeFileSync(s.file, image);
      const before = files.map((f) => server.contents(f.fid).slice());
      const second = CacheManager.create(server.connect(), { ...OPTIONS, cacheFile: s.file });
      try {
        droppedSeen += second.restored!.dropped;
        await second.storeRestored();
        for (const [k, f] of files.entries()) {
          const got = await second.read(f.fid, 0, f.bytes.length + 10);
          const at = firstDifference(got, f.bytes);
          assert.equal(at, -1, `round ${round}, file ${k}: first wrong byte at ${at} (flipped: ${hits.join(' ')})`);
          assert.deepEqual(server.contents(f.fid), before[k], `round ${round}, file ${k}: nothing was stored`);
        }
      } finally {
        await second.close();
      }
    } finally {
      s.done();
    }
  }
  t.diagnostic(`records dropped over the rounds: ${droppedSeen}`);
});
