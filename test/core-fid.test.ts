import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Fid, fidHash } from '../src/index.js';
import { addon } from '../src/core/native.js';
import { seededRandom } from './helpers/random.js';

test('the hash is pinned: the same value native/test/fid_test.cpp checks', () => {
  assert.equal(fidHash(1, 2, 3, 4), 1145416960);
  assert.equal(new Fid(1, 2, 3, 4).hash, 1145416960);
});

test('JS and C++ compute the same hash for random Fids', (t) => {
  const { next, seed } = seededRandom();
  t.diagnostic(`seed ${seed} (replay: CMKIT_SEED=${seed})`);
  for (let i = 0; i < 20_000; i++) {
    const w = [next(), next(), next(), next()] as const;
    assert.equal(fidHash(...w), addon.fidHash(...w), `seed ${seed}, fid ${w.join('.')}`);
  }
});

test('equals compares every field, hash first', () => {
  const a = new Fid(1, 2, 3, 4);
  assert.ok(a.equals(new Fid(1, 2, 3, 4)));
  for (const other of [new Fid(9, 2, 3, 4), new Fid(1, 9, 3, 4), new Fid(1, 2, 9, 4), new Fid(1, 2, 3, 9)]) {
    assert.ok(!a.equals(other), `${a} vs ${other}`);
  }
  assert.throws(() => a.equals({ ...a } as Fid), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
});

test('a Fid is immutable and survives structured clone through Fid.from', () => {
  const a = new Fid(0xffff_ffff, 0, 7, 1);
  assert.throws(() => {
    (a as { vnode: number }).vnode = 8;
  }, TypeError);
  const copy = Fid.from(structuredClone(a.toJSON()));
  assert.ok(copy.equals(a));
  assert.equal(String(copy), '4294967295.0.7.1');
});

test('bad fields are a TypeError or RangeError naming the field', () => {
  const cases: Array<[unknown[], string, string]> = [
    [['1', 2, 3, 4], 'TypeError', '"cell"'],
    [[1, undefined, 3, 4], 'TypeError', '"volume"'],
    [[1, 2, NaN, 4], 'RangeError', '"vnode"'],
    [[1, 2, 3, -1], 'RangeError', '"unique"'],
    [[2 ** 32, 2, 3, 4], 'RangeError', '"cell"'],
    [[1, 2.5, 3, 4], 'RangeError', '"volume"'],
    [[1, 2, Infinity, 4], 'RangeError', '"vnode"'],
    [[1, 2, 3, 4n], 'TypeError', '"unique"'],
  ];
  for (const [args, name, field] of cases) {
    assert.throws(
      () => new Fid(...(args as [number, number, number, number])),
      (e: Error) => e.name === name && e.message.includes(field),
      `${String(args)} should throw ${name} naming ${field}`,
    );
  }
  assert.throws(() => Fid.from(null as never), { name: 'TypeError' });
});
