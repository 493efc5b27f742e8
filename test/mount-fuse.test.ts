/**
 * The FUSE mount, met by programs nobody here wrote: cp, cmp, tar, diff, and this
 * project's exerciser through plain system calls. Each test runs `cmkit mount` as its own
 * process (the mount must keep serving while this process blocks in a system call on it).
 * Skipped, with the reason, where FUSE cannot be used.
 */
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { constants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { DirectoryFileServer } from '../src/index.js';
import { fuseUnavailable } from '../src/mount/fuse.js';
import { CacheMount, type MountStats } from '../src/mount/cache-mount.js';
import { firstDifference, patterned } from './helpers/files.js';
import { runFsx, type FsxTarget } from './helpers/fsx.js';
import { seededRandom } from './helpers/random.js';
import { CLI, mounted, withMount, withTmpfsMount, type Mounted } from './helpers/mount-process.js';

const skip = fuseUnavailable();
if (skip !== undefined) console.log(`# FUSE tests skipped: ${skip}`);
const REPO = path.join(__dirname, '..', '..');
const FSX_OPS = Number(process.env['CMKIT_MOUNT_FSX_OPS'] ?? 100_000);

/** The mount's stats, over its control socket (as `cmkit stats` gives them). */
function stats(m: Mounted): MountStats {
  return JSON.parse(execFileSync(process.execPath, [CLI, 'stats', m.mountpoint], { encoding: 'utf8' })) as MountStats;
}

test('CacheMount.mount refuses bad arguments by name, before touching FUSE', async () => {
  const server = new DirectoryFileServer(os.tmpdir());
  await assert.rejects(CacheMount.mount(server, 5 as unknown as string), { name: 'TypeError', message: /mountpoint/ });
  await assert.rejects(CacheMount.mount(server, '/x', { workers: -1 }), { name: 'RangeError', message: /options\.workers/ });
  await assert.rejects(CacheMount.mount(server, '/x', { entryTimeoutS: NaN }), { name: 'RangeError', message: /entryTimeoutS/ });
  await assert.rejects(CacheMount.mount(server, '/x', { caching: 'yes' as unknown as boolean }), { name: 'TypeError', message: /caching/ });
});

test('cmkit mount: a bad command line is refused with its usage, exit code 2', () => {
  for (const args of [[], ['mount', 'only-one'], ['mount', 'a', 'b', '--cache-size', 'lots'], ['mount', 'a', 'b', '--workers', '1.5'], ['mount', 'a', 'b', '--bandwidth', 'fast'], ['frobnicate']]) {
    try {
      execFileSync(process.execPath, [CLI, ...args], { stdio: 'pipe' });
      assert.fail(`accepted ${args.join(' ')}`);
    } catch (e) {
      const err = e as { status: number; stderr: Buffer };
      assert.equal(err.status, 2, args.join(' '));
      assert.match(err.stderr.toString(), /usage:/);
    }
  }
});

test('cp of a 64 MiB file over an existing one: cmp identical, 0 bytes fetched for the overwrite', { skip, timeout: 120_000 }, async () => {
  await withMount('cp', [], async (m) => {
    const size = 64 * 1024 * 1024;
    writeFileSync(path.join(m.backing, 'big'), patterned(size, 7));
    const source = path.join(m.backing, '..', 'source');
    writeFileSync(source, patterned(size, 8));
    const before = stats(m).server;
    execFileSync('cp', [source, path.join(m.mountpoint, 'big')]);
    const after = stats(m).server;
    assert.equal(after.bytesFetched - before.bytesFetched, 0, 'the overwrite fetched nothing');
    assert.ok(after.bytesStored - before.bytesStored >= size, 'close stored the new contents');
    execFileSync('cmp', [source, path.join(m.mountpoint, 'big')]);
    execFileSync('cmp', [source, path.join(m.backing, 'big')]);
    // The CLI prints the counters too.
    const printed = execFileSync(process.execPath, [CLI, 'stats', m.mountpoint], { encoding: 'utf8' });
    assert.ok((JSON.parse(printed) as MountStats).requests['write']! > 0);
  });
});

test('a source tree copied in with tar and out again: diff -r is clean (served on the mounting thread alone)', { skip, timeout: 120_000 }, async () => {
  await withMount('tar', ['--workers', '0'], async (m) => {
    const trees = ['src', 'native', 'test'];
    const inside = path.join(m.mountpoint, 'tree');
    mkdirSync(inside);
    execFileSync('sh', ['-c', `tar -C "${REPO}" -cf - ${trees.join(' ')} | tar -C "${inside}" -xf -`]);
    const out = path.join(m.backing, '..', 'out');
    mkdirSync(out);
    execFileSync('sh', ['-c', `tar -C "${inside}" -cf - . | tar -C "${out}" -xf -`]);
    for (const t of trees) execFileSync('diff', ['-r', path.join(REPO, t), path.join(out, t)]);
    // Renames and removals through the mount reach the backing tree.
    execFileSync('mv', [path.join(inside, 'src'), path.join(inside, 'moved')]);
    execFileSync('rm', ['-r', path.join(inside, 'test')]);
    assert.equal(await m.stop(), 0);
    execFileSync('diff', ['-r', path.join(REPO, 'src'), path.join(m.backing, 'tree', 'moved')]);
    execFileSync('diff', ['-r', path.join(REPO, 'native'), path.join(m.backing, 'tree', 'native')]);
    assert.deepEqual(execFileSync('ls', [path.join(m.backing, 'tree')], { encoding: 'utf8' }).split('\n').filter(Boolean), ['moved', 'native']);
  });
});

test(`fsx through the mount: ${FSX_OPS} operations with plain system calls, stores refused for good and failing for a while, never a wrong byte`, { skip, timeout: 30 * 60_000 }, async (t) => {
  const BLOCK = 4096;
  const CHUNK = 16384;
  // A cache far smaller than the files' traffic: buffers are recycled all the time.
  // The backing directory is a tmpfs: the run makes it refuse stores for good (chattr +i:
  // EPERM) and for a while (read-only: EROFS).
  const opts = (base: string): string[] => ['--block-size', '4096', '--chunk-size', '16K', '--cache-size', '1M', '--salvage-dir', path.join(base, 'salvage')];
  await withTmpfsMount(t, 'fsx', '64m', opts, async (m) => {
    const { next, seed } = seededRandom();
    t.diagnostic(`seed ${seed} (replay: CMKIT_SEED=${seed} CMKIT_MOUNT_FSX_OPS=${FSX_OPS} node --test dist/test/mount-fuse.test.js)`);
    const sizes = [BLOCK - 1, CHUNK + 1, 3 * CHUNK - BLOCK / 2, 7 * CHUNK + 3];
    const initial = sizes.map((size, k) => {
      const b = new Uint8Array(size);
      for (let i = 0; i < size; i++) b[i] = next() & 0xff;
      writeFileSync(path.join(m.backing, `f${k}`), b);
      return b;
    });
    const inMount = (k: number): string => path.join(m.mountpoint, `f${k}`);
    // chattr and mount run from a shell started before any file is open: a process
    // forked while our files are open closes its copies at exec, and each close is a
    // FLUSH that would store the very data the fault is meant to catch unstored.
    const shell = spawn('sh', ['-c', 'while read -r cmd; do eval "$cmd" >/dev/null 2>&1; echo $?; done'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let shellOut = '';
    shell.stdout!.on('data', (d: Buffer) => (shellOut += d.toString()));
    const sh = async (cmd: string): Promise<number> => {
      shell.stdin!.write(`${cmd}\n`);
      while (!shellOut.includes('\n')) await new Promise((resolve) => setTimeout(resolve, 1));
      const line = shellOut.slice(0, shellOut.indexOf('\n'));
      shellOut = shellOut.slice(line.length + 1);
      return Number(line);
    };
    const must = async (cmd: string): Promise<void> => assert.equal(await sh(cmd), 0, cmd);
    // chattr +i needs a kernel whose tmpfs takes it (6.0 on); without it, no refusals.
    const probe = path.join(m.backing, 'probe');
    writeFileSync(probe, '');
    const canRefuse = (await sh(`chattr +i '${probe}' && chattr -i '${probe}'`)) === 0;
    rmSync(probe);
    if (!canRefuse) t.diagnostic('chattr +i does not work on this tmpfs: the run has no refused stores');
    const handles: FileHandle[] = [];
    for (let k = 0; k < sizes.length; k++) handles.push(await open(inMount(k), 'r+'));
    const reopen = async (k: number): Promise<void> => {
      await handles[k]!.close();
      handles[k] = await open(inMount(k), 'r+');
    };
    // A read-only backing directory fails every file's operations, not only the one
    // flushed: the failing flush runs alone (the other files' steps wait for it).
    let running = 0;
    let exclusive: Promise<void> = Promise.resolve();
    const shared = async <T>(fn: () => Promise<T>): Promise<T> => {
      await exclusive;
      running++;
      try {
        return await fn();
      } finally {
        running--;
      }
    };
    const alone = async (fn: () => Promise<void>): Promise<void> => {
      let done!: () => void;
      const previous = exclusive;
      exclusive = new Promise((resolve) => (done = resolve));
      await previous;
      while (running > 0) await new Promise((resolve) => setTimeout(resolve, 1));
      try {
        await fn();
      } finally {
        done();
      }
    };
    const plain: FsxTarget = {
      read: async (k, offset, length) => {
        const bytes = new Uint8Array(length);
        let got = 0;
        while (got < length) {
          const { bytesRead } = await handles[k]!.read(bytes, got, length - got, offset + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        return { bytes: bytes.subarray(0, got), failures: 0 };
      },
      write: async (k, offset, data) => {
        let put = 0;
        while (put < data.length) put += (await handles[k]!.write(data, put, data.length - put, offset + put)).bytesWritten;
        return 0;
      },
      truncate: async (k, length) => {
        await handles[k]!.truncate(length);
        return 0;
      },
      flush: async (k) => {
        await handles[k]!.sync();
        return 0;
      },
      // Close and open again: the kernel drops its pages, the cache revalidates.
      evict: async (k) => {
        await reopen(k);
        return 0;
      },
      serverContents: async (k) => new Uint8Array(await readFile(path.join(m.backing, `f${k}`))),
      describe: async (k) =>
        `(fstat size ${(await handles[k]!.stat()).size}, backing size ${(await readFile(path.join(m.backing, `f${k}`))).length})`,
      // Another writer changes the backing file directly; we see it after the next
      // open (close-to-open consistency, as NFS gives).
      secondClient: async (k, offset, data) => {
        const h = await open(path.join(m.backing, `f${k}`), 'r+');
        try {
          await h.write(data, 0, data.length, offset);
        } finally {
          await h.close();
        }
        await reopen(k);
        return 0;
      },
      refusedFlush: async (k) => {
        const backing = path.join(m.backing, `f${k}`);
        await must(`chattr +i '${backing}'`);
        let refused = false;
        try {
          await handles[k]!.sync();
        } catch (e) {
          if ((e as { code?: string }).code !== 'EPERM') throw e;
          refused = true;
        } finally {
          await must(`chattr -i '${backing}'`);
        }
        // The kernel still has the refused bytes in its pages; a new open drops them.
        if (refused) await reopen(k);
        return refused;
      },
      failingFlush: (k) => alone(async () => {
        // Remounting read-only waits for no store of another file to be writing.
        for (let tries = 0; (await sh(`mount -o remount,ro '${m.backing}'`)) !== 0; tries++) {
          assert.ok(tries < 100, 'the backing tmpfs could be remounted read-only');
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        try {
          await handles[k]!.sync();
        } catch (e) {
          if ((e as { code?: string }).code !== 'EROFS') throw e;
        } finally {
          await must(`mount -o remount,rw '${m.backing}'`);
        }
      }),
    };
    const { refusedFlush: _plainRefused, ...rest } = plain;
    const target: FsxTarget = {
      ...rest,
      read: (k, offset, length) => shared(() => plain.read(k, offset, length)),
      write: (k, offset, data) => shared(() => plain.write(k, offset, data)),
      truncate: (k, length) => shared(() => plain.truncate(k, length)),
      flush: (k) => shared(() => plain.flush(k)),
      evict: (k) => shared(() => plain.evict(k)),
      secondClient: (k, offset, data) => shared(() => plain.secondClient(k, offset, data)),
      ...(canRefuse ? { refusedFlush: (k: number) => shared(() => plain.refusedFlush!(k)) } : {}),
    };
    try {
      const { counts } = await runFsx({ ops: FSX_OPS, block: BLOCK, chunk: CHUNK, initial, target, next, seed });
      t.diagnostic(`operations: ${JSON.stringify(counts)}`);
      t.diagnostic(`mount stats: ${JSON.stringify(stats(m))}`);
    } finally {
      for (const h of handles) await h.close();
      shell.stdin!.end();
    }
  });
});

test('SIGTERM during writes: every acknowledged byte is in the backing directory, and no mount is left', { skip, timeout: 120_000 }, async () => {
  await withMount('sigterm', [], async (m) => {
    const RECORD = 64 * 1024;
    // The writer prints how many bytes write(2) has acknowledged, after each record.
    const writer = spawn(
      process.execPath,
      [
        '-e',
        `
        const fs = require('fs');
        const [file, dir, record] = process.argv.slice(1);
        const fd = fs.openSync(file, 'w');
        const buf = Buffer.alloc(Number(record));
        try {
          for (let i = 0; ; i++) {
            buf.fill(i & 0xff);
            buf.writeUInt32LE(i, 0);
            fs.writeSync(fd, buf, 0, buf.length, i * buf.length);
            fs.writeFileSync(dir + '/small-' + i, 'record ' + i + '\\n');
            process.stdout.write('acked ' + (i + 1) + '\\n');
          }
        } catch (e) {
          process.stdout.write('stopped ' + e.code + '\\n');
        }
        `,
        path.join(m.mountpoint, 'log'),
        m.mountpoint,
        String(RECORD),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    writer.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const writerDone = new Promise<void>((resolve) => writer.on('exit', () => resolve()));
    // Let it write a while (tens of MiB), then stop the mount under it.
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if ((out.match(/acked/g) ?? []).length >= 200) {
          clearInterval(check);
          resolve();
        }
      }, 5);
    });
    assert.equal(await m.stop('SIGTERM'), 0, m.output());
    await writerDone;
    const acked = Math.max(0, ...[...out.matchAll(/acked (\d+)/g)].map((x) => Number(x[1])));
    assert.ok(acked >= 200, out.slice(-200));
    assert.match(out, /stopped/, 'the writer saw the mount go');
    assert.equal(mounted(m.mountpoint), false, 'no mount is left');
    const log = readFileSync(path.join(m.backing, 'log'));
    assert.ok(log.length >= acked * RECORD, `backing file holds ${log.length} bytes, ${acked * RECORD} acknowledged`);
    for (let i = 0; i < acked; i++) {
      const rec = log.subarray(i * RECORD, (i + 1) * RECORD);
      assert.equal(rec.readUInt32LE(0), i, `record ${i}`);
      assert.equal(firstDifference(rec.subarray(4), new Uint8Array(RECORD - 4).fill(i & 0xff)), -1, `record ${i}`);
      assert.equal(readFileSync(path.join(m.backing, `small-${i}`), 'utf8'), `record ${i}\n`);
    }
  });
});

test('a request worker that dies: its handles are served by the mounting thread, nothing hangs', { skip, timeout: 60_000 }, async () => {
  const base = mkdtempSync(path.join(os.tmpdir(), 'cmkit-worker-death-'));
  const backing = path.join(base, 'backing');
  const mnt = path.join(base, 'mnt');
  mkdirSync(backing);
  mkdirSync(mnt);
  const MiB = 1024 * 1024;
  const contents = patterned(2 * MiB, 9);
  writeFileSync(path.join(backing, 'f'), contents);
  // In this process: its thread serves the mount while these fs calls run on libuv's.
  const m = await CacheMount.mount(new DirectoryFileServer(backing), mnt, { workers: 1 });
  try {
    // O_DIRECT: every read and write reaches the mount, none is served by the kernel's pages.
    const h = await open(path.join(mnt, 'f'), constants.O_RDWR | constants.O_DIRECT);
    const buf = Buffer.alloc(MiB);
    await h.read(buf, 0, MiB, 0);
    assert.equal(firstDifference(buf, contents.subarray(0, MiB)), -1);
    assert.equal(m.requestWorkerThreads.length, 1);
    await m.requestWorkerThreads[0]!.terminate();
    await h.read(buf, 0, MiB, MiB);
    assert.equal(firstDifference(buf, contents.subarray(MiB)), -1, 'the same handle, now served by the mounting thread');
    await h.write(patterned(MiB, 10), 0, MiB, 0);
    await h.sync();
    await h.close();
    assert.equal(firstDifference(readFileSync(path.join(backing, 'f')).subarray(0, MiB), patterned(MiB, 10)), -1);
    assert.equal(m.stats().requestWorkersLost, 1);
    assert.equal(m.stats().requestWorkers, 0);
    assert.ok(m.stats().requests['read']! >= 2);
  } finally {
    await m.unmount();
    if (mounted(mnt)) execFileSync('umount', ['-l', mnt]);
    rmSync(base, { recursive: true, force: true });
  }
});

test('a backing directory that refuses the final stores for a while (read-only) loses nothing: the CLI keeps the data and retries until it takes them', { skip, timeout: 60_000 }, async (t) => {
  await withTmpfsMount(t, 'refuse', '16m', (base) => ['--salvage-dir', path.join(base, 'salvage')], async (m, base) => {
    const file = path.join(m.backing, 'kept');
    writeFileSync(file, '');
    // A writer holds the file open with 100 KiB written: acknowledged, not yet stored.
    const data = new Uint8Array(100 * 1024).map((_, i) => (i * 7 + 3) & 0xff);
    const writer = spawn(
      process.execPath,
      [
        '-e',
        `const fs = require('fs');
        const fd = fs.openSync(process.argv[1], 'r+');
        fs.writeSync(fd, new Uint8Array(100 * 1024).map((_, i) => (i * 7 + 3) & 0xff));
        console.log('written');
        setInterval(() => {}, 1000);`,
        path.join(m.mountpoint, 'kept'),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve) => writer.stdout!.on('data', () => resolve()));
    execFileSync('mount', ['-o', 'remount,ro', m.backing]); // EROFS: transient, the operator may remount
    m.cli.kill('SIGTERM');
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (m.output().includes('refused the final stores')) {
          clearInterval(check);
          resolve();
        }
      }, 20);
    });
    assert.equal(readFileSync(file).length, 0, 'not stored yet');
    execFileSync('mount', ['-o', 'remount,rw', m.backing]); // the server recovers
    assert.equal(await m.exited, 0, m.output());
    writer.kill();
    assert.equal(firstDifference(readFileSync(file), data), -1, 'every acknowledged byte reached the backing file');
    assert.ok(!existsSync(path.join(base, 'salvage')), 'nothing salvaged: the failure was transient');
  });
});
