import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';

import { CacheManager, MemoryFileServer, PagTable, Rights } from '../src/index.js';
import { fidOf, patterned } from './helpers/files.js';

const DAY = 86_400_000;
const CELL = 1; // fidOf's cell

function setup() {
  const server = new MemoryFileServer();
  const fid = fidOf(900);
  const contents = patterned(16 * 1024, 90);
  server.createFile(fid, contents);
  server.setAccess(fid, 500, Rights.Read | Rights.Write);
  server.setAccess(fid, 600, Rights.Read);
  const pags = PagTable.create({ capacity: 64 });
  const cm = CacheManager.create(server.connect(), { pags, cacheSize: 1 << 20 });
  const loginAs = (userId: number, expiresAt = Date.now() + DAY): number => {
    const pag = pags.login();
    pags.setToken(pag, { cell: CELL, userId, expiresAt, renewUntil: expiresAt + DAY });
    return pag;
  };
  return { server, fid, contents, pags, cm, loginAs };
}

const denied = { code: 'ERR_CMKIT_ACCESS_DENIED' };

test('rights are cached per PAG; a revoked user is refused at the next read after the callback break', async () => {
  const { server, fid, contents, pags, cm, loginAs } = setup();
  try {
    const alice = loginAs(500);
    const bob = loginAs(600);
    assert.deepEqual(await cm.read(fid, 0, 100, { pag: alice }), contents.subarray(0, 100));
    assert.deepEqual(await cm.read(fid, 0, 100, { pag: bob }), contents.subarray(0, 100));
    const asked = cm.stats().accessRpcs;
    assert.equal(asked, 2, 'the server was asked once per PAG');
    for (let i = 0; i < 5; i++) await cm.read(fid, 100 * i, 100, { pag: alice });
    assert.equal(cm.stats().accessRpcs, asked, 'then the cached rights served, without an RPC');
    assert.ok(cm.stats().accessHits >= 5);

    await assert.rejects(cm.write(fid, 0, new Uint8Array([1]), { pag: bob }), denied, 'bob may read, not write');
    assert.deepEqual(await cm.read(fid, 0, 1), contents.subarray(0, 1), 'the refused write changed nothing');

    server.setAccess(fid, 500, 0); // revoke alice: the server breaks our callback
    await assert.rejects(cm.read(fid, 0, 100, { pag: alice }), denied, 'alice is refused on the next read');
    assert.deepEqual(await cm.read(fid, 0, 100, { pag: bob }), contents.subarray(0, 100), 'bob still reads');
    pags.logout(alice);
    pags.logout(bob);
  } finally {
    await cm.close();
    pags.close();
  }
});

test('one user logging out leaves another user\'s cached rights alone', async () => {
  const { fid, contents, pags, cm, loginAs } = setup();
  try {
    const alice = loginAs(500);
    const bob = loginAs(600);
    await cm.read(fid, 0, 10, { pag: alice });
    await cm.read(fid, 0, 10, { pag: bob });
    const asked = cm.stats().accessRpcs;
    assert.equal(pags.logout(alice), true);
    assert.deepEqual(await cm.read(fid, 0, 10, { pag: bob }), contents.subarray(0, 10));
    assert.equal(cm.stats().accessRpcs, asked, 'bob\'s rights still came from the cache');
    await assert.rejects(cm.read(fid, 0, 10, { pag: alice }), { code: 'ERR_CMKIT_NO_SUCH_PAG' }, 'a logged-out PAG is a clear error');
    pags.logout(bob);
  } finally {
    await cm.close();
    pags.close();
  }
});

test('an expired token drops the cached rights: the PAG is anonymous, and anonymous may not read', async () => {
  const { server, fid, contents, pags, cm, loginAs } = setup();
  try {
    server.setAccess(fid, 'anonymous', 0);
    const carol = loginAs(500, Date.now() + 80);
    assert.deepEqual(await cm.read(fid, 0, 10, { pag: carol }), contents.subarray(0, 10));
    await sleep(120);
    await assert.rejects(cm.read(fid, 0, 10, { pag: carol }), (e: Error) => (e as { code?: string }).code === 'ERR_CMKIT_ACCESS_DENIED' && /anonymous/.test(e.message));
    pags.logout(carol);
  } finally {
    await cm.close();
    pags.close();
  }
});

test('a caller on a cache without PAGs, or a malformed caller, is a clear error', async () => {
  const server = new MemoryFileServer();
  const fid = fidOf(901);
  server.createFile(fid, patterned(100, 91));
  const cm = CacheManager.create(server.connect());
  try {
    await assert.rejects(cm.read(fid, 0, 1, { pag: 1 }), { name: 'TypeError', message: /options\.pags/ });
    await assert.rejects(cm.read(fid, 0, 1, { pag: -1 }), { name: 'RangeError', message: /caller\.pag/ });
    await assert.rejects(cm.write(fid, 0, new Uint8Array(1), 'me' as unknown as { pag: number }), { name: 'TypeError', message: /caller/ });
  } finally {
    await cm.close();
  }
});
