import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RwLock } from '../src/core/rw-lock.js';
import { Fid } from '../src/core/fid.js';
import { assertLocked, assertWriteLocked, type Vnode } from '../src/cache/context.js';

/**
 * The debug lock checks are on in npm test (CMKIT_DEBUG_LOCKS=1): a function documented
 * "under the write lock" called by a holder without it throws. Skipped when the suite is
 * run by hand without the variable.
 */
const on = process.env['CMKIT_DEBUG_LOCKS'] === '1';

function handle(): Vnode {
  return { fid: new Fid(1, 2, 3, 4), slot: 0, gen: 1, f: 0, i: 0, lock: new RwLock() };
}

test('debug lock checks: each mode is asked for and told apart', { skip: on ? false : 'CMKIT_DEBUG_LOCKS is not 1' }, () => {
  const v = handle();
  assert.throws(() => assertWriteLocked(v, 'f'), { code: 'ERR_CMKIT_LOCK_ASSERTION', message: /f runs under the write lock; this holder has none/ });
  assert.throws(() => assertLocked(v, 'g'), { code: 'ERR_CMKIT_LOCK_ASSERTION' });
  v.lock.read();
  assertLocked(v, 'g');
  assert.throws(() => assertWriteLocked(v, 'f'), /this holder has read/);
  v.lock.release();
  v.lock.write();
  assertLocked(v, 'g');
  assertWriteLocked(v, 'f');
  v.lock.release();
});
