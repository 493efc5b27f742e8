import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { CacheManager, DirectoryFileServer } from '../src/index.js';
import { firstDifference, patterned } from './helpers/files.js';

const KiB = 1024;

function tempRoot(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'cmkit-dir-'));
}

test('a cache over a directory: reads what is on disk; a flush puts every byte on disk; our own store keeps the cache valid', async () => {
  const root = tempRoot();
  const file = path.join(root, 'data.bin');
  const initial = patterned(300 * KiB, 101);
  writeFileSync(file, initial);
  const server = new DirectoryFileServer(root);
  const fid = await server.lookup('data.bin');
  const cm = CacheManager.create(server.connect(), { cacheSize: 4096 * KiB, chunkSize: 64 * KiB, prefetch: false });
  try {
    assert.equal(firstDifference(await cm.read(fid, 0, initial.length), initial), -1);
    const written = patterned(70 * KiB, 102);
    await cm.write(fid, 100 * KiB, written);
    await cm.truncate(fid, 250 * KiB);
    await cm.flush(fid);
    const model = initial.slice(0, 250 * KiB);
    model.set(written, 100 * KiB);
    assert.equal(firstDifference(new Uint8Array(readFileSync(file)), model), -1, 'the disk holds the model');
    const fetched = server.counters.fetchData;
    assert.equal(firstDifference(await cm.read(fid, 0, model.length), model), -1);
    assert.equal(server.counters.fetchData, fetched, 'our own stores left every cached buffer valid');
  } finally {
    await cm.close();
    rmSync(root, { recursive: true, force: true });
  }
});

test('a change made on disk outside the server is a new version: revalidate breaks the callback and the cache refetches', async () => {
  const root = tempRoot();
  const file = path.join(root, 'shared.txt');
  writeFileSync(file, 'old contents, same length');
  const server = new DirectoryFileServer(root);
  const fid = await server.lookup('shared.txt');
  const cm = CacheManager.create(server.connect(), { prefetch: false });
  try {
    const decode = (b: Uint8Array): string => new TextDecoder().decode(b);
    assert.equal(decode(await cm.read(fid, 0, 100)), 'old contents, same length');
    await new Promise((r) => setTimeout(r, 5)); // a later mtime, on any timestamp granularity we run on
    writeFileSync(file, 'NEW contents, same length');
    assert.equal(decode(await cm.read(fid, 0, 100)), 'old contents, same length', 'unseen until the server looks');
    const fetched = server.counters.fetchData;
    await server.revalidate(fid);
    assert.equal(decode(await cm.read(fid, 0, 100)), 'NEW contents, same length');
    assert.equal(server.counters.fetchData, fetched + 1, 'the old buffer was refetched');
  } finally {
    await cm.close();
    rmSync(root, { recursive: true, force: true });
  }
});

test('directory server: injected latency, and bad input is a clear error', async () => {
  const root = tempRoot();
  mkdirSync(path.join(root, 'sub'));
  writeFileSync(path.join(root, 'f'), patterned(10, 103));
  try {
    assert.throws(() => new DirectoryFileServer(42 as unknown as string), { name: 'TypeError', message: /root/ });
    assert.throws(() => new DirectoryFileServer(root, { rpcLatencyMs: -1 }), { name: 'RangeError', message: /rpcLatencyMs/ });
    const server = new DirectoryFileServer(root, { rpcLatencyMs: 20 });
    await assert.rejects(server.lookup('../etc/passwd'), { name: 'RangeError', message: /relative/ });
    await assert.rejects(server.lookup('sub'), { name: 'ServerError', message: /not a regular file/ });
    const fid = await server.lookup('f');
    const conn = server.connect();
    const t0 = performance.now();
    await conn.fetchStatus(fid);
    assert.ok(performance.now() - t0 >= 19, 'the RPC took the injected latency');
    assert.equal(server.counters.fetchStatus, 1);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('directory server: a bandwidth limit that fetches and stores share, queued on one wire', async () => {
  const root = tempRoot();
  writeFileSync(path.join(root, 'f'), patterned(2 * 1024 * KiB, 104));
  try {
    for (const bandwidth of [-1, Infinity, NaN]) {
      assert.throws(() => new DirectoryFileServer(root, { bandwidth }), { name: 'RangeError', message: /options\.bandwidth/ });
    }
    assert.throws(() => new DirectoryFileServer(root, { bandwidth: '1M' as unknown as number }), { name: 'TypeError', message: /options\.bandwidth/ });
    // 20 MiB/s: 2 MiB fetched and 1 MiB stored at once take 150 ms together, not 100.
    const server = new DirectoryFileServer(root, { bandwidth: 20 * 1024 * KiB });
    const fid = await server.lookup('f');
    const conn = server.connect();
    const t0 = performance.now();
    const [fetched] = await Promise.all([conn.fetchData(fid, 0, 2 * 1024 * KiB), conn.storeData(fid, 2 * 1024 * KiB, patterned(1024 * KiB, 105))]);
    const ms = performance.now() - t0;
    assert.equal(fetched.data.length, 2 * 1024 * KiB);
    assert.ok(ms >= 145, `3 MiB at 20 MiB/s took ${ms.toFixed(0)} ms`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('namespace RPCs: a rename through the server keeps Fids and versions; chmod and utimes are not foreign changes', async () => {
  const root = tempRoot();
  const server = new DirectoryFileServer(root);
  const cm = CacheManager.create(server.connect(), { prefetch: false });
  try {
    await server.mkdir('a', 0o755);
    const created = await server.create('a/f', 0o644);
    assert.equal(created.kind, 'file');
    const fid = created.fid!;
    await cm.write(fid, 0, patterned(10 * KiB, 5));
    await cm.flush(fid);
    const { dataVersion } = await cm.stat(fid);
    await server.rename('a', 'b');
    const moved = await server.getattr('b/f');
    assert.ok(moved.fid!.equals(fid), 'the same file, the same Fid');
    await server.setattr('b/f', { mode: 0o600, mtime: { sec: Date.UTC(2020, 0, 1) / 1000, nsec: 0 } });
    assert.equal((await server.getattr('b/f')).mode & 0o777, 0o600);
    // Our cache's status is still current: no version jump, no refetch.
    const fetched = server.counters.fetchData;
    assert.equal(firstDifference(await cm.read(fid, 0, 10 * KiB), patterned(10 * KiB, 5)), -1);
    assert.equal(server.counters.fetchData, fetched);
    assert.equal((await cm.stat(fid)).dataVersion, dataVersion, 'rename, chmod and utimes left the version alone');
    assert.deepEqual((await server.readdir('b')).map((e) => [e.name, e.attr.kind]), [['f', 'file']]);
    await assert.rejects(server.create('b/f', 0o644), { code: 'EEXIST' });
    await server.unlink('b/f');
    await server.rmdir('b');
    await assert.rejects(server.getattr('b'), { code: 'ENOENT' });
    assert.throws(() => server.getattr('../outside'), { name: 'RangeError' });
    assert.throws(() => server.rename('x', 5 as unknown as string), { name: 'TypeError' });
  } finally {
    await cm.close();
    rmSync(root, { recursive: true, force: true });
  }
});

test('a held file: unlinked or renamed over, its RPCs still reach it; the last release closes its descriptor', async () => {
  const root = tempRoot();
  const server = new DirectoryFileServer(root);
  const fds = (): number => readdirSync('/proc/self/fd').length;
  try {
    writeFileSync(path.join(root, 'f'), 'held contents');
    const fid = await server.lookup('f');
    const before = fds();
    await server.hold(fid);
    await server.hold(fid); // a second opener shares the descriptor
    assert.equal(fds(), before + 1);
    unlinkSync(path.join(root, 'f'));
    writeFileSync(path.join(root, 'f'), 'another file at the same name');
    const c = server.connect();
    assert.equal(Buffer.from((await c.fetchData(fid, 0, 100)).data).toString(), 'held contents');
    await c.storeData(fid, 5, Buffer.from('CONTENTS'), { fileLength: 13 });
    assert.equal(Buffer.from((await c.fetchData(fid, 0, 100)).data).toString(), 'held CONTENTS');
    assert.equal((await server.fileAttr(fid)).nlink, 0);
    assert.equal((await server.setFileAttr(fid, { mode: 0o600 })).mode & 0o777, 0o600);
    assert.equal(readFileSync(path.join(root, 'f'), 'utf8'), 'another file at the same name', 'the name\'s new file is untouched');
    await server.release(fid);
    assert.equal(fds(), before + 1, 'one opener still holds it');
    await server.release(fid);
    assert.equal(fds(), before, 'the last release closed the descriptor');
    await assert.rejects(c.fetchData(fid, 0, 10), { errno: -116 }, 'released: the name leads to another file (ESTALE)');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('hold of a file whose name now leads elsewhere: ESTALE, nothing held', async () => {
  const root = tempRoot();
  const server = new DirectoryFileServer(root);
  try {
    writeFileSync(path.join(root, 'f'), 'old');
    const fid = await server.lookup('f');
    unlinkSync(path.join(root, 'f'));
    writeFileSync(path.join(root, 'f'), 'new');
    await assert.rejects(server.hold(fid), { errno: -116 });
    await server.release(fid); // nothing to release: no effect
    const again = await server.lookup('f');
    await server.hold(again);
    assert.equal(Buffer.from((await server.connect().fetchData(again, 0, 10)).data).toString(), 'new');
    await server.release(again);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a rename answers as it happened while an open of the file by a path that leads nowhere is failing (found by fsstress: the rename failed with that open\'s ENOENT after renaming)', async () => {
  const root = tempRoot();
  const server = new DirectoryFileServer(root);
  try {
    writeFileSync(path.join(root, 'a'), 'data');
    const fid = await server.lookup('a');
    // The opener's path: deep, so its open (a walk of 1,500 directories) is still going
    // when the rename, queued after it, has renamed and looks at the file's holds.
    const deep = Array.from({ length: 1500 }, () => 'd').join('/');
    mkdirSync(path.join(root, deep), { recursive: true });
    const hold = server.hold(fid, `${deep}/gone`);
    const renamed = server.rename('a', 'b');
    await assert.rejects(hold, { errno: -116 }, 'the opener whose path leads nowhere gets ESTALE');
    await renamed; // rejected with ENOENT before the fix
    assert.deepEqual(readdirSync(root).sort(), ['b', 'd']);
    await server.hold(fid, 'b');
    assert.equal(Buffer.from((await server.connect().fetchData(fid, 0, 10)).data).toString(), 'data');
    await server.release(fid);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('hold, release, fileAttr and setFileAttr refuse what is not a Fid with a TypeError naming it', async () => {
  const root = tempRoot();
  const server = new DirectoryFileServer(root);
  try {
    for (const bad of [undefined, 'f', 42, {}]) {
      await assert.rejects(server.hold(bad as never), { name: 'TypeError', message: /fid/ });
      await assert.rejects(server.release(bad as never), { name: 'TypeError', message: /fid/ });
      await assert.rejects(server.fileAttr(bad as never), { name: 'TypeError', message: /fid/ });
      await assert.rejects(server.setFileAttr(bad as never, {}), { name: 'TypeError', message: /fid/ });
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
