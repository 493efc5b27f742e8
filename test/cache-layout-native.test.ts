/**
 * The cache's record layout is drawn in src/cache/layout.ts; the native read hit path
 * (native/core/read_hit.cpp) reads the same words by the positions of
 * native/core/cache_layout.h. Each value the native side uses must be layout.ts's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BufferState, HEADER_I32, HeaderI32, VNODE_F64, VNODE_I32, VnodeF64, VnodeI32 } from '../src/cache/layout.js';
import { addon } from '../src/core/native.js';

test('the native read hit reads the cache records where layout.ts puts them', () => {
  assert.deepEqual(addon.cacheLayout, {
    vnodeF64: VNODE_F64,
    vnodeI32: VNODE_I32,
    dataVersion: VnodeF64.DataVersion,
    bufDataVersionLow: VnodeF64.BufDataVersionLow,
    length: VnodeF64.Length,
    breakSeq: VnodeI32.BreakSeq,
    statusSeq: VnodeI32.StatusSeq,
    identity: VnodeI32.Identity,
    generation: VnodeI32.Generation,
    writeSeq: VnodeI32.WriteSeq,
    headerI32: HEADER_I32,
    state: HeaderI32.State,
    headerIdentity: HeaderI32.Identity,
    valid: BufferState.Valid,
    dirty: BufferState.Dirty,
    busy: BufferState.Busy,
    prefetched: BufferState.Prefetched,
    storing: BufferState.Storing,
  });
});
