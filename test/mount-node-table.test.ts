import assert from 'node:assert/strict';
import { test } from 'node:test';

import { NodeTable, ROOT_INO } from '../src/mount/node-table.js';

test('NodeTable: ids per (parent, name), paths walked up, a rename moves a subtree, the last forget drops a node', () => {
  const t = new NodeTable(3);
  const a = t.remember(ROOT_INO, 'a');
  const f = t.remember(a, 'f');
  assert.equal(t.remember(a, 'f'), f, 'a second lookup gives the same id');
  assert.equal(t.path(f), 'a/f');
  t.moved(ROOT_INO, 'a', ROOT_INO, 'b');
  assert.equal(t.path(f), 'b/f', 'the child moved with its directory');
  assert.equal(t.child(ROOT_INO, 'a'), undefined);
  const g = t.remember(ROOT_INO, 'g');
  t.moved(ROOT_INO, 'g', a, 'f');
  assert.equal(t.path(f), undefined, 'the replaced node has no path');
  assert.equal(t.path(g), 'b/f');
  assert.equal(t.forget(f, 1), false, 'one lookup of two forgotten');
  assert.equal(t.forget(f, 1), true);
  t.unlinked(a, 'f');
  assert.equal(t.path(g), undefined);
  assert.equal(t.forget(ROOT_INO, 1), false, 'the root is never forgotten');
  assert.equal(t.path(ROOT_INO), '');
});
