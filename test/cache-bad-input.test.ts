import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CacheManager, Fid, MemoryFileServer, RefTable } from '../src/index.js';
import type { CacheDescriptor } from '../src/index.js';
import { fidOf, patterned } from './helpers/files.js';

const TWO_53 = 2 ** 53;

test('bad cache-manager calls are each a clear error and change no state', async () => {
  const server = new MemoryFileServer();
  const fid = fidOf(600);
  server.createFile(fid, patterned(10_000, 1));
  const cm = CacheManager.create(server.connect(), { cacheSize: 1 << 20, chunkSize: 16_384 });
  await cm.write(fid, 0, new Uint8Array([1, 2, 3]));
  const unknown = fidOf(999);

  const file = async (): Promise<string> => JSON.stringify({ status: await cm.stat(fid), head: [...(await cm.read(fid, 0, 8))] });
  const counters = (): string => JSON.stringify({ stats: cm.stats(), server: server.counters });
  const fileBefore = await file();
  const before = counters();

  const cases: Array<[string, () => Promise<unknown>, RegExp | Record<string, string>]> = [
    ['offset past 2^53', () => cm.read(fid, TWO_53, 1), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }],
    ['offset + length past 2^53', () => cm.read(fid, TWO_53 - 10, 20), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }],
    ['negative offset', () => cm.read(fid, -1, 1), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }],
    ['negative length', () => cm.read(fid, 0, -5), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }],
    ['NaN length', () => cm.read(fid, 0, NaN), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }],
    ['fractional offset', () => cm.read(fid, 1.5, 1), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }],
    ['string offset', () => cm.read(fid, '0' as never, 1), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }],
    ['fid not a Fid', () => cm.read({ cell: 1, volume: 1, vnode: 1, unique: 1 } as Fid, 0, 1), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }],
    ['fid missing', () => cm.write(undefined as never, 0, new Uint8Array(1)), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }],
    ['data a string', () => cm.write(fid, 0, 'abc' as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }],
    ['data an Array', () => cm.write(fid, 0, [1, 2] as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }],
    ['data a Uint16Array', () => cm.write(fid, 0, new Uint16Array(2) as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }],
    ['write past 2^53', () => cm.write(fid, TWO_53 - 1, new Uint8Array(2)), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }],
    ['negative truncate', () => cm.truncate(fid, -1), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }],
    ['truncate past 2^53', () => cm.truncate(fid, TWO_53), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }],
    ['readInto a plain array', () => cm.readInto(fid, 0, [] as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }],
    ['unknown fid read', () => cm.read(unknown, 0, 10), { name: 'ServerError', code: 'ERR_CMKIT_SERVER_ERROR' }],
    ['unknown fid stat', () => cm.stat(unknown), { name: 'ServerError', code: 'ERR_CMKIT_SERVER_ERROR' }],
    ['unknown fid write', () => cm.write(unknown, 0, new Uint8Array(1)), { name: 'ServerError', code: 'ERR_CMKIT_SERVER_ERROR' }],
    ['flush of a bad fid', () => cm.flush(null as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }],
    ['attach a foreign descriptor', async () => CacheManager.attach({ kind: 'cmkit.RefTable', id: 1 } as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }],
    ['attach null', async () => CacheManager.attach(null as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }],
    ['options: blockSize not a power of two', async () => CacheManager.create(server.connect(), { blockSize: 3000 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }],
    ['options: chunkSize not a multiple', async () => CacheManager.create(server.connect(), { chunkSize: 5000 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }],
    ['options: prefetch not boolean', async () => CacheManager.create(server.connect(), { prefetch: 'yes' as never }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }],
    ['options: server missing', async () => CacheManager.create(undefined as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }],
  ];
  for (const [what, call, expected] of cases) {
    await assert.rejects(call, expected as Record<string, string>, what);
  }
  assert.ok(cases.length >= 20);
  const after = counters();
  const strip = (s: string): unknown => {
    const o = JSON.parse(s) as { stats: Record<string, number>; server: Record<string, number> };
    // The unknown-fid calls ask the server once each (that is how they learn the fid is
    // unknown); everything else must be as it was.
    delete o.stats['statusRpcs'];
    delete o.server['fetchStatus'];
    return o;
  };
  assert.deepEqual(strip(after), strip(before), 'no bad call changed the cache or the server');
  assert.equal(await file(), fileBefore, 'nor the file');
  await cm.close();
});

test('a closed manager and a stale descriptor are clear errors', async () => {
  const server = new MemoryFileServer();
  const fid = fidOf(601);
  server.createFile(fid, patterned(100, 1));
  const cm = CacheManager.create(server.connect(), { cacheSize: 1 << 20, chunkSize: 16_384 });
  const descriptor: CacheDescriptor = cm.descriptor;
  await cm.close();
  for (const call of [() => cm.read(fid, 0, 1), () => cm.write(fid, 0, new Uint8Array(1)), () => cm.flush(fid), () => cm.truncate(fid, 0), () => cm.stat(fid), () => cm.evict(fid)]) {
    await assert.rejects(call, { name: 'TypeError', code: 'ERR_CMKIT_CLOSED' });
  }
  assert.throws(() => CacheManager.attach(descriptor), { name: 'TypeError', code: 'ERR_CMKIT_CLOSED' }, 'stale descriptor');
  assert.throws(() => RefTable.attach(descriptor.vnodeTable), { code: 'ERR_CMKIT_CLOSED' });
  await cm.close(); // closing twice is harmless
});
