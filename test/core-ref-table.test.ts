import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Fid, RefTable } from '../src/index.js';

const fid = (vnode: number): Fid => new Fid(1, 100, vnode, 1);

test('getHold creates once, findHold finds, counts go up and down', () => {
  const t = new RefTable({ capacity: 8 });
  const created: number[] = [];
  const slot = t.getHold(fid(1), (s) => created.push(s));
  assert.deepEqual(created, [slot]);
  assert.equal(t.getHold(fid(1), (s) => created.push(s)), slot, 'second getHold finds the entry');
  assert.deepEqual(created, [slot], 'onCreate runs only for a new entry');
  assert.equal(t.findHold(fid(1)), slot);
  t.hold(slot);
  assert.equal(t.refCount(slot), 4);
  for (let i = 0; i < 4; i++) t.release(slot);
  assert.equal(t.refCount(slot), 0);
  assert.equal(t.findHold(fid(2)), -1, 'unknown Fid');
  t.close();
});

test('an idle entry stays findable; the table recycles idle entries only', () => {
  const t = new RefTable({ capacity: 4 });
  const idle = t.getHold(fid(1));
  t.release(idle);
  assert.equal(t.findHold(fid(1)), idle, 'held again from zero');
  t.release(idle);

  const held = [2, 3, 4].map((v) => t.getHold(fid(v)));
  const recycled = t.getHold(fid(5));
  assert.equal(recycled, idle, 'the only idle entry is the one recycled');
  assert.equal(t.findHold(fid(1)), -1, 'fid 1 lost its entry');
  assert.ok(t.fidAt(recycled)!.equals(fid(5)));
  assert.equal(t.stats().recycled, 1);
  for (const s of held) assert.equal(t.refCount(s), 1, 'held entries untouched');

  assert.throws(() => t.getHold(fid(6)), { name: 'Error', code: 'ERR_CMKIT_TABLE_FULL' });
  t.releaseMany([...held, recycled]);
  assert.equal(t.stats().totalRefs, 0);
  t.close();
});

test('batch forms hold and release many in one call', () => {
  const t = new RefTable({ capacity: 64 });
  const slots = [1, 2, 3].map((v) => t.getHold(fid(v)));
  const out = t.findHoldMany([fid(1), fid(9), fid(3)]);
  assert.deepEqual([...out], [slots[0], -1, slots[2]]);
  assert.equal(t.refCount(slots[0]!), 2);
  t.releaseMany(new Int32Array([slots[0]!, slots[2]!]));
  t.releaseMany(slots);
  assert.equal(t.stats().totalRefs, 0);
  assert.throws(() => t.releaseMany([slots[0]!]), (e: Error & { code: string }) =>
    e.name === 'RangeError' && e.code === 'ERR_CMKIT_NOT_HELD' && /slots\[0\]/.test(e.message));
  assert.throws(() => t.findHoldMany([fid(1), {} as Fid]), { name: 'TypeError', message: /fids\[1\]/ });
  assert.throws(() => t.findHoldMany([fid(1)], new Int32Array(2)), { name: 'TypeError', message: /"out"/ });
  t.close();
});

test('bad arguments and misuse are TypeError or RangeError with a code', () => {
  const t = new RefTable({ capacity: 4 });
  const slot = t.getHold(fid(1));
  t.release(slot);
  const cases: Array<[() => unknown, string, string]> = [
    [() => t.release(slot), 'RangeError', 'ERR_CMKIT_NOT_HELD'],
    [() => t.hold(slot), 'RangeError', 'ERR_CMKIT_NOT_HELD'],
    [() => t.release(3), 'RangeError', 'ERR_CMKIT_BAD_SLOT'],
    [() => t.release(-1), 'RangeError', 'ERR_OUT_OF_RANGE'],
    [() => t.release(NaN), 'RangeError', 'ERR_OUT_OF_RANGE'],
    [() => t.release('0' as never), 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    [() => t.refCount(1.5), 'RangeError', 'ERR_OUT_OF_RANGE'],
    [() => t.findHold({ cell: 1, volume: 100, vnode: 1, unique: 1 } as Fid), 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    [() => t.getHold(undefined as never), 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    [() => new RefTable({ capacity: 0 }), 'RangeError', 'ERR_OUT_OF_RANGE'],
    [() => new RefTable({ capacity: 2 ** 24 + 1 }), 'RangeError', 'ERR_OUT_OF_RANGE'],
    [() => new RefTable({ capacity: '8' as never }), 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    [() => new RefTable(null as never), 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    [() => RefTable.attach({ kind: 'cmkit.RwLock', id: 1 } as never), 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    [() => RefTable.attach({ kind: 'cmkit.RefTable', id: 999_999 }), 'TypeError', 'ERR_CMKIT_CLOSED'],
  ];
  for (const [call, name, code] of cases) {
    assert.throws(call, { name, code }, String(call));
  }
  assert.equal(t.stats().totalRefs, 0, 'failed calls changed no count');
  t.close();
});

test('use after close is an error on every holder of the table', () => {
  const t = new RefTable({ capacity: 4 });
  const other = RefTable.attach(t.descriptor);
  const slot = other.getHold(fid(1));
  t.close();
  for (const holder of [t, other]) {
    assert.throws(() => holder.findHold(fid(1)), { name: 'TypeError', code: 'ERR_CMKIT_CLOSED' });
    assert.throws(() => holder.release(slot), { name: 'TypeError', code: 'ERR_CMKIT_CLOSED' });
  }
  assert.throws(() => RefTable.attach(t.descriptor), { code: 'ERR_CMKIT_CLOSED' });
  other.detach();
});
