import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';

test('the piscina gateway example runs and its workers read what they wrote', () => {
  const out = execFileSync(process.execPath, [path.join(__dirname, '..', 'examples', 'piscina-gateway.js')], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  for (const offset of [0, 4096, 8192]) assert.match(out, new RegExp(`written at ${offset}`));
  // Only the bytes written are stored: three writes of 15 bytes, three calls of 15 bytes.
  assert.match(out, /storeData: 3,/);
  assert.match(out, /bytesStored: 45\b/);
});
