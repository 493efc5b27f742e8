/**
 * `cmkit mount --cache-dir`: the cache in a file that the next mount starts from.
 *   - restart: a file read before is served after one status and no fetch, unless it
 *     changed outside meanwhile; blocks corrupted in the file between mounts are fetched
 *     again, never served;
 *   - kill -9 while four writers write: the next mount stores every acknowledged byte
 *     before it mounts (10 runs).
 */
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, readSync, closeSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { cacheFileLayout } from '../src/cache/cache-file.js';
import { fuseUnavailable } from '../src/mount/fuse.js';
import { CLI, mount, mounted, type Mounted } from './helpers/mount-process.js';
import { seededRandom } from './helpers/random.js';
import { CHUNK, CHUNKS, chunkBytes } from './workers/ack-writer-data.js';

const skip = fuseUnavailable();
const WRITER = path.join(__dirname, 'workers', 'ack-writer.js');

interface ServerCounts {
  fetchStatus: number;
  fetchData: number;
}

function serverCounts(m: Mounted): ServerCounts {
  return (JSON.parse(execFileSync(process.execPath, [CLI, 'stats', m.mountpoint], { encoding: 'utf8' })) as { server: ServerCounts }).server;
}

test('restart on the cache file: one status, no fetch; a file changed outside, or corrupted blocks, fetched again', { skip, timeout: 180_000 }, async (t) => {
  const base = mkdtempSync(path.join(os.tmpdir(), 'cmkit-cachefile-'));
  const cacheDir = path.join(base, 'cache-dir');
  const options = ['--cache-dir', cacheDir, '--cache-size', '512M'];
  try {
    let m = await mount(base, options);
    const file = path.join(m.backing, 'big');
    const bytes = new Uint8Array(256 << 20);
    for (let i = 0; i < bytes.length; i += 4096) bytes[i] = (i / 4096) & 0xff;
    bytes[123_457] = 9;
    writeFileSync(file, bytes);
    const inMount = path.join(m.mountpoint, 'big');
    assert.ok(readFileSync(inMount).equals(bytes));
    assert.equal(await m.stop(), 0);

    m = await mount(base, options);
    try {
      assert.match(m.output(), /found 1 files, 4096 clean blocks/);
      const before = serverCounts(m);
      assert.ok(readFileSync(inMount).equals(bytes), 'every byte right after the restart');
      const after = serverCounts(m);
      assert.equal(after.fetchStatus - before.fetchStatus, 1, 'one status');
      assert.equal(after.fetchData - before.fetchData, 0, 'no fetch');
    } finally {
      assert.equal(await m.stop(), 0);
    }

    // Changed outside while nothing is mounted: one byte, same size.
    const fd = openSync(file, 'r+');
    writeSync(fd, Uint8Array.of(77), 0, 1, 5_000_000);
    closeSync(fd);
    bytes[5_000_000] = 77;
    m = await mount(base, options);
    try {
      const before = serverCounts(m);
      assert.ok(readFileSync(inMount).equals(bytes), 'the change is seen');
      assert.ok(serverCounts(m).fetchData > before.fetchData, 'fetched again');
    } finally {
      assert.equal(await m.stop(), 0);
    }

    // Bytes flipped in the blocks, their seals and headers, as a bad disk would.
    const rng = seededRandom();
    t.diagnostic(`corruption seed ${rng.seed}`);
    const blockSize = 64 * 1024;
    const { regions } = cacheFileLayout({ blockSize, buffers: (512 << 20) / blockSize, maxVnodes: 4096 });
    const cacheFile = path.join(cacheDir, 'cache');
    const cfd = openSync(cacheFile, 'r+');
    for (let k = 0; k < 300; k++) {
      const r = [regions.data, regions.seals, regions.headers, regions.versions][k % 4]!;
      const at = r.offset + (rng.next() % Math.min(r.bytes, 256 << 20));
      const b = new Uint8Array(1);
      readSync(cfd, b, 0, 1, at);
      b[0] = b[0]! ^ (1 + (rng.next() % 255));
      writeSync(cfd, b, 0, 1, at);
    }
    closeSync(cfd);
    m = await mount(base, options);
    try {
      const got = readFileSync(inMount);
      assert.ok(got.equals(bytes), 'every byte right over a corrupted cache file');
    } finally {
      assert.equal(await m.stop(), 0);
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('kill -9 during writes by 4 writers: the next mount stores every acknowledged byte (10 runs)', { skip, timeout: 600_000 }, async (t) => {
  const rng = seededRandom();
  t.diagnostic(`seed ${rng.seed}`);
  let restoredBlocks = 0;
  for (let run = 0; run < 10; run++) {
    const base = mkdtempSync(path.join(os.tmpdir(), 'cmkit-kill9-'));
    const options = ['--cache-dir', path.join(base, 'cache-dir'), '--cache-size', '256M'];
    try {
      let m = await mount(base, options);
      const names = [0, 1, 2, 3].map((w) => `w${w}`);
      for (const n of names) writeFileSync(path.join(m.backing, n), new Uint8Array(CHUNK * CHUNKS));
      const acked = names.map(() => new Set<number>());
      const writers = names.map((n, w) => {
        const p = spawn(process.execPath, [WRITER, path.join(m.mountpoint, n), String(w), String(rng.next())], { stdio: ['ignore', 'pipe', 'inherit'] });
        let pending = '';
        p.stdout!.on('data', (d: Buffer) => {
          const lines = (pending + d.toString()).split('\n');
          pending = lines.pop()!;
          for (const line of lines) acked[w]!.add(Number(line.slice(4)));
        });
        return new Promise<void>((resolve) => p.on('close', () => resolve()));
      });
      await sleep(300 + (rng.next() % 1200));
      m.cli.kill('SIGKILL');
      await m.exited;
      await Promise.all(writers);
      if (mounted(m.mountpoint)) execFileSync('umount', ['-l', m.mountpoint]);
      const total = acked.reduce((n, s) => n + s.size, 0);

      m = await mount(base, options);
      const found = /(\d+) unstored blocks/.exec(m.output());
      restoredBlocks += Number(found?.[1] ?? 0);
      assert.equal(await m.stop(), 0, m.output());
      const missing: string[] = [];
      for (const [w, n] of names.entries()) {
        const got = readFileSync(path.join(m.backing, n));
        for (const chunk of acked[w]!) {
          const want = chunkBytes(w, chunk);
          const at = chunk * CHUNK;
          if (!Buffer.from(want).equals(got.subarray(at, at + CHUNK))) missing.push(`${w}/${chunk}`);
        }
      }
      assert.equal(missing.length, 0, `run ${run}: ${missing.length} of ${total} acknowledged chunks are not in the backing files (${missing.slice(0, 20).join(' ')}); ${m.output()}`);
      t.diagnostic(`run ${run}: ${total} acknowledged writes; restored: ${m.output().split('\n').find((l) => l.includes('cache file')) ?? ''}`);
    } finally {
      const mnt = path.join(base, 'mnt');
      if (mounted(mnt)) execFileSync('umount', ['-l', mnt]);
      rmSync(base, { recursive: true, force: true });
    }
  }
  assert.ok(restoredBlocks > 0, 'some runs were killed with unstored blocks');
});
