/**
 * Cached reads served where the kernel's request is read: the FUSE session's reader
 * threads answer a READ whose blocks are all cached and valid from the cache's shared
 * memory (native/core/read_hit.h), and no JS thread is woken. Writes through the mount,
 * racing such reads, are never seen torn; with --no-reader-hits every read goes to JS.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, constants, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { queryControl } from '../src/mount/control.js';
import { fuseUnavailable } from '../src/mount/fuse.js';
import { patterned } from './helpers/files.js';
import { withMount } from './helpers/mount-process.js';

const skip = fuseUnavailable();
const MiB = 1024 * 1024;

interface Counters {
  readonly session: { wakes: number; readerHits: number };
  readonly requests: Record<string, number>;
}

/**
 * The mount's counters, asked in this process: a child process would close its inherited
 * copies of our open descriptors at exec, and each such close is a FLUSH the mount serves.
 */
async function stats(mountpoint: string): Promise<Counters> {
  return JSON.parse(await queryControl(mountpoint)) as Counters;
}

/** Reads all of fd with O_DIRECT-sized 1 MiB reads; the bytes. */
function readAll(fd: number, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let off = 0; off < size; ) {
    const n = readSync(fd, out, off, Math.min(MiB, size - off), off);
    assert.ok(n > 0, `read at ${off}`);
    off += n;
  }
  return out;
}

test('warm O_DIRECT reads are answered by the reader threads: every byte right, no JS thread woken', { skip, timeout: 60_000 }, async () => {
  await withMount('hits', [], async (m) => {
    const size = 24 * MiB + 12345;
    const contents = Buffer.from(patterned(size, 61));
    writeFileSync(path.join(m.backing, 'f'), contents);
    const fd = openSync(path.join(m.mountpoint, 'f'), constants.O_RDONLY | constants.O_DIRECT);
    try {
      assert.ok(readAll(fd, size).equals(contents), 'the first (cold) read');
      const before = (await stats(m.mountpoint));
      assert.ok(readAll(fd, size).equals(contents), 'the second (warm) read');
      const after = (await stats(m.mountpoint));
      const hits = after.session.readerHits - before.session.readerHits;
      const jsReads = (after.requests['read'] ?? 0) - (before.requests['read'] ?? 0);
      assert.ok(hits >= Math.ceil(size / MiB), `reader hits ${hits}`);
      assert.equal(jsReads, 0, 'no READ reached a JS thread');
      assert.equal(after.session.wakes - before.session.wakes, 0, `JS wakeups during the warm read (requests: ${JSON.stringify(after.requests)})`);
    } finally {
      closeSync(fd);
    }
  });
});

test('reads racing writes through the mount never see a block torn, and see each block move forward', { skip, timeout: 120_000 }, async () => {
  await withMount('hits-race', [], async (m) => {
    // A block is one cache block (the mount's 64 KiB), written whole by one write(2): a
    // reader's copy of it that raced the writer's would hold two generations.
    const BLOCK = 64 * 1024;
    const blocks = 64;
    // Block b of generation g: every 32-bit word is b * 65536 + g.
    const blockOf = (b: number, g: number): Buffer => Buffer.alloc(BLOCK).fill(Buffer.from(new Uint32Array([b * 65536 + g]).buffer));
    writeFileSync(path.join(m.backing, 'f'), Buffer.concat(Array.from({ length: blocks }, (_, b) => blockOf(b, 0))));
    const file = path.join(m.mountpoint, 'f');
    const fd = openSync(file, constants.O_RDONLY | constants.O_DIRECT);
    readAll(fd, blocks * BLOCK); // warm: from here reads are hits unless a write came in
    // Another process writes whole blocks, each a new generation, as fast as it can.
    const writer = spawn(process.execPath, ['-e', `
      const fs = require('fs');
      const fd = fs.openSync(${JSON.stringify(file)}, 'r+');
      const gen = new Array(${blocks}).fill(0);
      const end = Date.now() + 3000;
      while (Date.now() < end) {
        const b = Math.floor(Math.random() * ${blocks});
        gen[b]++;
        const buf = Buffer.alloc(${BLOCK}).fill(Buffer.from(new Uint32Array([b * 65536 + gen[b]]).buffer));
        fs.writeSync(fd, buf, 0, buf.length, b * ${BLOCK});
      }
      fs.closeSync(fd);
    `], { stdio: 'inherit' });
    const exited = new Promise<number | null>((resolve) => writer.on('exit', resolve));
    const seen = new Array<number>(blocks).fill(0);
    const PER_READ = 4;
    const buf = Buffer.alloc(PER_READ * BLOCK);
    let reads = 0;
    let writing = true;
    void exited.then(() => (writing = false));
    const before = (await stats(m.mountpoint));
    try {
      while (writing) {
        for (let at = 0; at < blocks; at += PER_READ) {
          const n = readSync(fd, buf, 0, buf.length, at * BLOCK);
          assert.equal(n, buf.length);
          for (let k = 0; k < PER_READ; k++) {
            const words = new Uint32Array(buf.buffer, buf.byteOffset + k * BLOCK, BLOCK / 4);
            const first = words[0]!;
            assert.equal(first >>> 16, at + k, `block ${at + k} holds another block's bytes`);
            assert.ok(words.every((w) => w === first), `block ${at + k} torn: generations ${first & 0xffff} and ${words.find((w) => w !== first)! & 0xffff}`);
            const g = first & 0xffff;
            assert.ok(g >= seen[at + k]!, `block ${at + k} went back from generation ${seen[at + k]} to ${g}`);
            seen[at + k] = g;
          }
          reads++;
        }
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      closeSync(fd);
    }
    assert.equal(await exited, 0);
    const after = (await stats(m.mountpoint));
    assert.ok(reads > 100, `${reads} reads`);
    assert.ok(after.session.readerHits - before.session.readerHits > 0, 'some reads were reader hits');
    assert.ok(seen.filter((g) => g > 0).length > blocks / 2, `the reads saw most blocks rewritten (${seen.filter((g) => g > 0).length} of ${blocks}, ${reads} reads, max generation ${Math.max(...seen)})`);
    // Afterwards the mount and the backing directory agree.
    const final = readFileSync(file);
    for (let b = 0; b < blocks; b++) assert.ok(final.subarray(b * BLOCK, (b + 1) * BLOCK).equals(blockOf(b, final.readUInt32LE(b * BLOCK) & 0xffff)));
  });
});

test('--no-reader-hits: every read goes to a JS thread, and the bytes are the same', { skip, timeout: 60_000 }, async () => {
  await withMount('no-hits', ['--no-reader-hits'], async (m) => {
    const size = 4 * MiB;
    const contents = Buffer.from(patterned(size, 62));
    writeFileSync(path.join(m.backing, 'f'), contents);
    const fd = openSync(path.join(m.mountpoint, 'f'), constants.O_RDONLY | constants.O_DIRECT);
    try {
      readAll(fd, size);
      assert.ok(readAll(fd, size).equals(contents));
    } finally {
      closeSync(fd);
    }
    assert.equal((await stats(m.mountpoint)).session.readerHits, 0);
  });
});
