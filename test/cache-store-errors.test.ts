import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { CacheManager, DirectoryFileServer, MemoryFileServer, ServerError } from '../src/index.js';
import { RemoteFileServer, ServerChannel } from '../src/server/server-channel.js';
import { storeFailure } from '../src/cache/store-error.js';
import { fidOf, firstDifference, patterned } from './helpers/files.js';

const KiB = 1024;
const ENOENT = 2;
const ENOSPC = 28;

function tempDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'cmkit-salvage-test-'));
}

test('store errors are sorted: busy, timeouts, ENOSPC, EDQUOT, EROFS and no errno keep the data; a gone file, EFBIG, EACCES do not', () => {
  for (const e of [new ServerError('busy', 'b'), new ServerError('timeout', 't'), new ServerError('error', 'x', -ENOSPC), new ServerError('error', 'x', -122), new ServerError('error', 'x', -30), new Error('no errno')]) {
    assert.equal(storeFailure(e), 'transient', e.message);
  }
  for (const errno of [2, 116, 27, 13, 1]) assert.equal(storeFailure(new ServerError('error', 'x', -errno)), 'permanent', `errno ${errno}`);
});

test('one file refused for good while 20 others are dirty: flushAll stores all 20, salvages the refused bytes and records the errno once', async () => {
  const salvageDir = tempDir();
  const server = new MemoryFileServer();
  const refused = fidOf(900);
  const others = Array.from({ length: 20 }, (_, k) => fidOf(901 + k));
  const original = patterned(10 * KiB, 1);
  server.createFile(refused, original);
  for (const fid of others) server.createFile(fid);
  const cm = CacheManager.create(server.connect(), { cacheSize: 4096 * KiB, chunkSize: 64 * KiB, storeBehind: false, salvageDir });
  try {
    const lost = patterned(70 * KiB, 2);
    await cm.write(refused, 0, lost);
    const written = others.map((_, k) => patterned(5 * KiB + k, 10 + k));
    await Promise.all(others.map((fid, k) => cm.write(fid, 0, written[k]!)));
    // The refused file is flushed first (lowest slot), and every store of it fails.
    server.injectFault({ rpc: 'storeData', kind: 'error', fid: refused, errno: -ENOENT, count: 1000 });
    assert.equal(cm.storeError(refused).seq, 0);
    await assert.rejects(cm.flushAll(), (e: ServerError) => e instanceof ServerError && e.errno === -ENOENT);
    others.forEach((fid, k) => assert.equal(firstDifference(server.contents(fid), written[k]!), -1, `file ${k} stored`));
    // The refused bytes are in the salvage directory, one file per store call (64 KiB chunks).
    const names = readdirSync(salvageDir).filter((n) => n !== 'salvage.log').sort((a, b) => Number(a.split('@')[1]!.split('+')[0]) - Number(b.split('@')[1]!.split('+')[0]));
    assert.deepEqual(names, [`${refused}@0+65536`, `${refused}@65536+6144`]);
    const salvaged = Buffer.concat(names.map((n) => readFileSync(path.join(salvageDir, n))));
    assert.equal(firstDifference(salvaged, lost), -1, 'every refused byte salvaged');
    assert.match(readFileSync(path.join(salvageDir, 'salvage.log'), 'utf8'), new RegExp(`${refused}@0\\+65536 errno ${ENOENT}`));
    const error = cm.storeError(refused);
    assert.ok(error.seq > 0);
    assert.equal(error.errno, ENOENT);
    assert.equal(cm.stats().storesRefused, 1);
    // Nothing is dirty now: a flush is a no-op, the error is not raised again, and what
    // the cache shows of the file is the server's again.
    await cm.flushAll();
    await cm.flush(refused);
    assert.equal(cm.storeError(refused).seq, error.seq, 'recorded once');
    server.clearFaults();
    assert.equal((await cm.stat(refused)).length, original.length);
    assert.equal(firstDifference(await cm.read(refused, 0, 100 * KiB), original), -1);
  } finally {
    await cm.close();
    rmSync(salvageDir, { recursive: true, force: true });
  }
});

test('a transient store failure keeps the data dirty with its errno (ENOSPC stays ENOSPC); nothing is salvaged', async () => {
  const salvageDir = tempDir();
  const server = new MemoryFileServer();
  const fid = fidOf(950);
  server.createFile(fid);
  const cm = CacheManager.create(server.connect(), { cacheSize: 4096 * KiB, chunkSize: 64 * KiB, storeBehind: false, salvageDir });
  try {
    const data = patterned(100 * KiB, 3);
    await cm.write(fid, 0, data);
    server.injectFault({ rpc: 'storeData', kind: 'error', errno: -ENOSPC, count: 1 });
    await assert.rejects(cm.flush(fid), (e: ServerError) => e.errno === -ENOSPC);
    assert.equal(cm.stats().storesRefused, 0);
    assert.equal(cm.storeError(fid).seq, 0);
    assert.equal(cm.cachedLength(fid), data.length, 'the view is unchanged: still our length');
    await cm.flush(fid);
    assert.equal(firstDifference(server.contents(fid), data), -1);
    assert.deepEqual(readdirSync(salvageDir), []);
  } finally {
    await cm.close();
    rmSync(salvageDir, { recursive: true, force: true });
  }
});

test('an errno survives the hop between threads: a worker sees ENOSPC, not a bare error', async () => {
  const server = new MemoryFileServer();
  const fid = fidOf(960);
  server.createFile(fid);
  const name = `cmkit.test.errno.${process.pid}`;
  const channel = new ServerChannel(name, server.connect());
  const remote = new RemoteFileServer(name);
  try {
    server.injectFault({ rpc: 'storeData', kind: 'error', errno: -ENOSPC });
    await assert.rejects(remote.storeData(fid, 0, new Uint8Array(10)), (e: ServerError) => e instanceof ServerError && e.errno === -ENOSPC);
  } finally {
    remote.close();
    channel.close();
  }
});

test('options.salvageDir is checked by name', () => {
  const server = new MemoryFileServer();
  assert.throws(() => CacheManager.create(server.connect(), { salvageDir: '' }), { name: 'TypeError', message: /options\.salvageDir/ });
  assert.throws(() => CacheManager.create(server.connect(), { salvageDir: 7 as unknown as string }), { name: 'TypeError', message: /options\.salvageDir/ });
});

test('a file deleted under unstored writes: the salvage file names its Fid, range and path, and salvage.log says why', async () => {
  const root = tempDir();
  const salvageDir = tempDir();
  mkdirSync(path.join(root, 'sub dir'));
  writeFileSync(path.join(root, 'sub dir', 'gone%.txt'), 'old');
  const server = new DirectoryFileServer(root);
  const fid = await server.lookup('sub dir/gone%.txt');
  const cm = CacheManager.create(server.connect(), { storeBehind: false, salvageDir });
  try {
    await cm.write(fid, 0, new TextEncoder().encode('unstored bytes'));
    unlinkSync(path.join(root, 'sub dir', 'gone%.txt'));
    await assert.rejects(cm.flush(fid), (e: ServerError) => e.errno === -ENOENT);
    assert.deepEqual(readdirSync(salvageDir).sort(), [`${fid}@0+14@sub dir%2Fgone%25.txt`, 'salvage.log']);
    assert.equal(readFileSync(path.join(salvageDir, `${fid}@0+14@sub dir%2Fgone%25.txt`), 'utf8'), 'unstored bytes');
    assert.match(readFileSync(path.join(salvageDir, 'salvage.log'), 'utf8'), /errno 2 path "sub dir\/gone%\.txt": storeData sub dir\/gone%\.txt: ENOENT/);
  } finally {
    await cm.close();
    rmSync(root, { recursive: true, force: true });
    rmSync(salvageDir, { recursive: true, force: true });
  }
});
