import assert from 'node:assert/strict';
import { once } from 'node:events';
import path from 'node:path';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';

import { RwLock } from '../src/index.js';
import { addon } from '../src/core/native.js';

test('readers share, a writer excludes everyone', () => {
  const a = new RwLock();
  const b = RwLock.attach(a.descriptor);
  const c = RwLock.attach(a.descriptor);
  assert.ok(a.tryRead());
  assert.ok(b.tryRead(), 'two readers at once');
  assert.ok(!c.tryWrite(), 'no writer while reading');
  a.release();
  b.release();
  assert.ok(c.tryWrite());
  assert.ok(!a.tryRead(), 'no reader while writing');
  assert.ok(!b.tryWrite(), 'no second writer');
  c.release();
  assert.equal(a.descriptor.words[0], 0, 'the word is free again');
});

test('tryUpgrade succeeds only for the sole reader and keeps the share otherwise', () => {
  const a = new RwLock();
  const b = RwLock.attach(a.descriptor);
  a.read();
  b.read();
  assert.equal(a.tryUpgrade(), false);
  assert.equal(a.mode, 'read', 'still holds its read share');
  b.release();
  assert.equal(a.tryUpgrade(), true);
  assert.equal(a.mode, 'write');
  assert.ok(!b.tryRead());
  assert.equal(a.upgrade !== undefined, true);
  a.downgrade();
  assert.equal(a.mode, 'read');
  assert.ok(b.tryRead(), 'readers enter after a downgrade');
  assert.ok(!RwLock.attach(a.descriptor).tryWrite(), 'but no writer');
  a.release();
  b.release();
});

test('upgrade of the sole reader does not wait', () => {
  const a = new RwLock();
  a.read();
  assert.equal(a.upgrade(), false, 'reports that it did not wait');
  assert.equal(a.mode, 'write');
  a.release();
});

test('a pending writer keeps new readers out, and an async waiter is woken', async () => {
  const holder = new RwLock();
  const writer = RwLock.attach(holder.descriptor);
  const lateReader = RwLock.attach(holder.descriptor);
  holder.read();
  let wrote = false;
  const w = writer.writeAsync().then(() => {
    wrote = true;
  });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(wrote, false, 'the writer waits for the reader');
  assert.ok(!lateReader.tryRead(), 'a new reader does not overtake a waiting writer');
  holder.release();
  await w;
  assert.equal(writer.mode, 'write');
  const r = lateReader.readAsync();
  writer.downgrade();
  await r;
  assert.equal(lateReader.mode, 'read', 'woken by the downgrade');
  writer.release();
  lateReader.release();
  assert.equal(holder.descriptor.words[0], 0);
});

test('misuse is a RangeError and leaves the lock as it was', () => {
  const a = new RwLock();
  const other = RwLock.attach(a.descriptor);
  assert.throws(() => a.release(), { name: 'RangeError', code: 'ERR_CMKIT_LOCK_NOT_HELD' });
  assert.throws(() => a.downgrade(), { name: 'RangeError', code: 'ERR_CMKIT_LOCK_NOT_HELD' });
  assert.throws(() => a.tryUpgrade(), { name: 'RangeError', code: 'ERR_CMKIT_LOCK_NOT_HELD' });
  a.read();
  assert.throws(() => a.read(), { name: 'RangeError', code: 'ERR_CMKIT_LOCK_HELD' });
  assert.throws(() => a.write(), { name: 'RangeError', code: 'ERR_CMKIT_LOCK_HELD' });
  assert.throws(() => a.downgrade(), { name: 'RangeError', code: 'ERR_CMKIT_LOCK_NOT_HELD' });
  assert.ok(other.tryRead(), 'still one plain read share, nothing else');
  other.release();
  a.release();
  assert.throws(() => a.release(), { name: 'RangeError', code: 'ERR_CMKIT_LOCK_NOT_HELD' });
  assert.equal(a.descriptor.words[0], 0);
});

test('bad arguments name the argument', () => {
  const plain = new Int32Array(4);
  const shared = new Int32Array(new SharedArrayBuffer(16));
  assert.throws(() => new RwLock(plain), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /"words"/ });
  assert.throws(() => new RwLock(new Uint32Array(shared.buffer) as never), { name: 'TypeError', message: /"words"/ });
  assert.throws(() => new RwLock(shared, 4), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: /"index"/ });
  assert.throws(() => new RwLock(shared, -1), { name: 'RangeError', message: /"index"/ });
  assert.throws(() => new RwLock(shared, NaN), { name: 'RangeError', message: /"index"/ });
  assert.throws(() => RwLock.attach({ kind: 'cmkit.RefTable' } as never), { name: 'TypeError', message: /"descriptor"/ });
  assert.throws(() => RwLock.attach(undefined as never), { name: 'TypeError', message: /"descriptor"/ });
});

test('the lock word reads as the addon says: the bit constants are defined once, in C++', () => {
  const { bits } = addon.rwLock;
  const a = new RwLock();
  const b = RwLock.attach(a.descriptor);
  const word = (): number => a.descriptor.words[0]! >>> 0;
  a.read();
  b.read();
  assert.equal(word() & bits.readerMask, 2, 'two read shares');
  assert.equal(word() & bits.writer, 0);
  a.release();
  b.release();
  a.write();
  assert.equal((word() & bits.writer) >>> 0, bits.writer >>> 0, 'the writer bit');
  assert.equal(word() & bits.readerMask, 0);
  assert.ok(!b.tryWrite());
  a.release();
  assert.equal(word() & ~bits.waiters, 0);
});

test('optimistic reads: a stamp while no writer holds the lock, invalid once a writer came in', () => {
  const a = new RwLock(new Int32Array(new SharedArrayBuffer(8)), 0, 1);
  const b = RwLock.attach(a.descriptor);
  const s = a.optimisticRead();
  assert.ok(s >= 0 && s % 2 === 0);
  assert.ok(a.validate(s));
  b.read();
  assert.ok(a.validate(s), 'readers change nothing');
  b.release();
  b.write();
  assert.equal(a.optimisticRead(), -1, 'no stamp while a writer holds it');
  assert.ok(!a.validate(s));
  b.downgrade();
  const s2 = a.optimisticRead();
  assert.ok(s2 >= 0 && s2 !== s && !a.validate(s));
  assert.ok(b.tryUpgrade());
  assert.ok(!a.validate(s2), 'an upgrade is a writer too');
  b.release();
  assert.ok(a.validate(a.optimisticRead()));
  assert.ok(!a.validate(-1));
  const words = new Int32Array(new SharedArrayBuffer(16));
  assert.throws(() => new RwLock(words, 0).optimisticRead(), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => new RwLock().optimisticRead(), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => new RwLock(words, 0, 0), { name: 'RangeError', message: /"seqIndex"/ });
  assert.throws(() => new RwLock(words, 0, 4), { name: 'RangeError', message: /"seqIndex"/ });
  const c = new RwLock(words, 0, 1);
  assert.equal(RwLock.attach(c.descriptor).descriptor.seqIndex, 1, 'the descriptor carries it');
});

test('an optimistic read that validates saw no torn write, against a writer on another thread', async () => {
  const lock = new RwLock(new Int32Array(new SharedArrayBuffer(8)), 0, 1);
  const pair = new Int32Array(new SharedArrayBuffer(8));
  // stop[0]: the reader says stop; stop[1]: the writer says it has begun.
  const stop = new Int32Array(new SharedArrayBuffer(8));
  const writer = new Worker(`
    const { RwLock } = require(${JSON.stringify(path.join(__dirname, '..', 'src', 'index.js'))});
    const { workerData: d, parentPort } = require('node:worker_threads');
    const lock = RwLock.attach(d.lock);
    let n = 0;
    Atomics.store(d.stop, 1, 1);
    for (; Atomics.load(d.stop, 0) === 0; n++) {
      lock.write();
      d.pair[0] = n;
      for (let k = 0; k < 20; k++) d.pair[1] = (d.pair[1] + 1) | 0;
      d.pair[1] = n;
      lock.release();
    }
    parentPort.postMessage(n);`, { eval: true, workerData: { lock: lock.descriptor, pair, stop } });
  let validated = 0;
  let refused = 0;
  let torn = 0;
  // A worker can take long to start (under ASan, on a loaded machine): read only once it writes.
  for (const giveUp = Date.now() + 60_000; Atomics.load(stop, 1) === 0 && Date.now() < giveUp; ) await new Promise((r) => setTimeout(r, 5));
  const until = Date.now() + 300;
  while (Date.now() < until) {
    const stamp = lock.optimisticRead();
    if (stamp < 0) continue;
    const first = pair[0];
    const second = pair[1];
    if (!lock.validate(stamp)) {
      refused++;
      continue;
    }
    if (first !== second) torn++;
    validated++;
  }
  Atomics.store(stop, 0, 1);
  const [writes] = (await once(writer, 'message')) as [number];
  assert.equal(torn, 0, 'a validated read is of one write');
  assert.ok(writes > 0 && validated > 0, `${writes} writes, ${validated} validated reads, ${refused} refused`);
});
