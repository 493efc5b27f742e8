/**
 * One writer of the kill -9 test: writes CHUNKS disjoint chunks of its file in a shuffled
 * order, each with bytes only it and that chunk have, and after each write(2) returns
 * all of it prints "ack <chunk>" on stdout. It goes on until a write fails (the mount was killed).
 * argv: file, writer number, seed.
 */
import { openSync, writeSync } from 'node:fs';

import { chunkBytes, CHUNK, CHUNKS } from './ack-writer-data.js';

const [file, writerText, seedText] = process.argv.slice(2);
const writer = Number(writerText);
let s = Number(seedText) >>> 0;
const order = Array.from({ length: CHUNKS }, (_, k) => k);
for (let k = order.length - 1; k > 0; k--) {
  s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
  const j = s % (k + 1);
  [order[k], order[j]] = [order[j]!, order[k]!];
}
let fd = -1;
try {
  fd = openSync(file!, 'r+');
  for (const chunk of order) {
    // A write cut short (the mount died between the kernel's requests of one write(2))
    // acknowledged only its first part: the chunk is not counted.
    if (writeSync(fd, chunkBytes(writer, chunk), 0, CHUNK, chunk * CHUNK) !== CHUNK) break;
    process.stdout.write(`ack ${chunk}\n`);
  }
} catch {
  // The mount is gone: what was acknowledged is on stdout.
}
