import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as cjs from '../src/index.js';

test('ESM and CommonJS entry points export the same classes', async () => {
  // A variable specifier keeps tsc from rewriting this import into a require().
  const specifier = 'cmkit';
  const esm = (await import(specifier)) as typeof cjs;
  // Every value the CommonJS build exports, the ESM entry exports too.
  for (const name of Object.keys(cjs) as Array<keyof typeof cjs>) {
    assert.ok(name in esm, `ESM exports ${name}`);
    assert.equal(esm[name], cjs[name], `${name} is the same object through import and require`);
  }
  assert.ok(new esm.Fid(1, 2, 3, 4) instanceof cjs.Fid);
});
