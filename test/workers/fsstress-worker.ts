/**
 * One process of the fsstress-style run (../mount-fsstress.test.ts): random creates,
 * writes, truncations, renames, links, unlinks, mkdirs and rmdirs on a namespace that the
 * other processes change at the same time, so most races a real workload has happen
 * here. An errno that such a race explains (ENOENT, EEXIST, ENOTEMPTY...) is expected;
 * any other is reported. One check needs no model: a file this process holds open and
 * unlinks is its own, so what it wrote there must read back exactly.
 * Usage: node fsstress-worker.js <root> <seed> <ops>; prints one JSON line.
 */
import * as fs from 'node:fs';

import { seededRandom } from '../helpers/random.js';

const [root, seedText, opsText] = process.argv.slice(2);
const rng = seededRandom(Number(seedText));
const pick = (n: number): number => rng.next() % n;
const DIRS = ['', 'd0', 'd1', 'd0/e'];
const NAMES = 8;
const EXPECTED = new Set(['ENOENT', 'EEXIST', 'ENOTEMPTY', 'ENOTDIR', 'EISDIR', 'EINVAL']);

const counts: Record<string, number> = {};
const unexpected: string[] = [];
const openUnlinked: string[] = [];

/** A random path: a file name in one of the directories (which may not exist now). */
function somePath(): string {
  const dir = DIRS[pick(DIRS.length)]!;
  const name = `f${pick(NAMES)}`;
  return `${root}/${dir === '' ? '' : dir + '/'}${name}`;
}

function bytes(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = rng.next() & 0xff;
  return b;
}

/** Sizes around the cache's 64 KiB block and 1 MiB chunk. */
function size(): number {
  const r = pick(10);
  return r < 5 ? pick(4096) : r < 9 ? pick(200_000) : pick(1_300_000);
}

const ops: Array<[string, () => void]> = [
  ['create', () => fs.writeFileSync(somePath(), bytes(size()), { mode: 0o666 })],
  ['write', () => {
    const h = fs.openSync(somePath(), 'r+');
    try {
      fs.writeSync(h, bytes(1 + pick(70_000)), 0, undefined, pick(300_000));
    } finally {
      fs.closeSync(h);
    }
  }],
  ['append', () => fs.appendFileSync(somePath(), bytes(1 + pick(5000)))],
  ['truncate', () => fs.truncateSync(somePath(), pick(400_000))],
  ['unlink', () => fs.unlinkSync(somePath())],
  ['rename', () => fs.renameSync(somePath(), somePath())],
  ['link', () => fs.linkSync(somePath(), somePath())],
  ['mkdir', () => fs.mkdirSync(`${root}/${DIRS[1 + pick(DIRS.length - 1)]}`, 0o777)],
  ['rmdir', () => fs.rmdirSync(`${root}/${DIRS[1 + pick(DIRS.length - 1)]}`)],
  ['read', () => fs.readFileSync(somePath())],
  ['open-unlink', () => {
    // A file of our own: create a fresh name, unlink it, then write and read it back.
    const p = `${root}/own-${process.pid}-${pick(1000)}`;
    const h = fs.openSync(p, 'wx+', 0o666);
    try {
      fs.unlinkSync(p);
      const want = bytes(1 + pick(150_000));
      fs.writeSync(h, want, 0, want.length, 0);
      const got = Buffer.alloc(want.length + 10);
      const n = fs.readSync(h, got, 0, got.length, 0);
      const st = fs.fstatSync(h);
      if (n !== want.length || !got.subarray(0, n).equals(want) || st.size !== want.length || st.nlink !== 0) {
        openUnlinked.push(`${p}: read ${n} of ${want.length} bytes, size ${st.size}, nlink ${st.nlink}`);
      }
    } finally {
      fs.closeSync(h);
    }
  }],
];

process.umask(0);
const only = process.env.FSS_ONLY ? process.env.FSS_ONLY.split(',') : undefined;
const chosen = only ? ops.filter(([n]) => only.includes(n)) : ops;
for (let k = 0; k < Number(opsText); k++) {
  const [name, op] = chosen[pick(chosen.length)]!;
  try {
    op();
    counts[name] = (counts[name] ?? 0) + 1;
  } catch (e) {
    const code = (e as { code?: string }).code ?? String(e);
    if (!EXPECTED.has(code)) unexpected.push(`${name}: ${code}: ${(e as Error).message}`);
  }
}
process.stdout.write(JSON.stringify({ counts, unexpected, openUnlinked }) + '\n');
