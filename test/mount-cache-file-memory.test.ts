/**
 * A cache file far larger than the memory the mount may use: `cmkit mount --cache-dir
 * --cache-size 4G` in a memory cgroup limited to 512 MiB reads 3 GiB of files twice; the
 * second pass is served from the file (no fetch) and the process is never OOM-killed:
 * the kernel pages the file in and out as it would any file's pages. Skips, saying why,
 * where no memory cgroup can be made (cgroup v1's memory controller is what this
 * machine kind has; v2's memory.max is used where it is the one mounted).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, closeSync, rmSync, rmdirSync, statfsSync, writeFileSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { fuseUnavailable } from '../src/mount/fuse.js';
import { CLI, mounted } from './helpers/mount-process.js';

const LIMIT = 512 << 20;
const FILES = 12;
const FILE_BYTES = 256 << 20; // 3 GiB in all

interface MemoryCgroup {
  readonly dir: string;
  /** Peak and OOM kills, as the controller counts them. */
  readonly report: () => { peak: number; oomKills: number; underOom: boolean };
  readonly remove: () => void;
}

function memoryCgroup(): MemoryCgroup | string {
  if (process.getuid?.() !== 0) return 'not root: cannot make a memory cgroup';
  const v1 = '/sys/fs/cgroup/memory';
  const v2 = '/sys/fs/cgroup';
  const name = `cmkit-test-${process.pid}`;
  try {
    if (existsSync(path.join(v1, 'memory.limit_in_bytes'))) {
      const dir = path.join(v1, name);
      mkdirSync(dir);
      writeFileSync(path.join(dir, 'memory.limit_in_bytes'), String(LIMIT));
      return {
        dir,
        report: () => ({
          peak: Number(readFileSync(path.join(dir, 'memory.max_usage_in_bytes'), 'utf8')),
          oomKills: Number(/oom_kill (\d+)/.exec(readFileSync(path.join(dir, 'memory.oom_control'), 'utf8'))?.[1] ?? 0),
          underOom: /under_oom 1/.test(readFileSync(path.join(dir, 'memory.oom_control'), 'utf8')),
        }),
        remove: () => rmdirSync(dir),
      };
    }
    if (existsSync(path.join(v2, 'cgroup.controllers')) && readFileSync(path.join(v2, 'cgroup.controllers'), 'utf8').includes('memory')) {
      const dir = path.join(v2, name);
      mkdirSync(dir);
      writeFileSync(path.join(dir, 'memory.max'), String(LIMIT));
      writeFileSync(path.join(dir, 'memory.swap.max'), '0');
      return {
        dir,
        report: () => ({
          peak: existsSync(path.join(dir, 'memory.peak')) ? Number(readFileSync(path.join(dir, 'memory.peak'), 'utf8')) : 0,
          oomKills: Number(/oom_kill (\d+)/.exec(readFileSync(path.join(dir, 'memory.events'), 'utf8'))?.[1] ?? 0),
          underOom: false,
        }),
        remove: () => rmdirSync(dir),
      };
    }
    return 'no writable memory cgroup controller';
  } catch (e) {
    return `cannot make a memory cgroup: ${(e as Error).message}`;
  }
}

const noFuse = fuseUnavailable();
// 3 GiB of files and up to 3 GiB of the cache file they fill, with room to spare.
const free = ((st) => st.bavail * st.bsize)(statfsSync(os.tmpdir()));
const noRoom = free < 8 * 2 ** 30 ? `${(free / 2 ** 30).toFixed(1)} GiB free in ${os.tmpdir()}, 8 GiB wanted` : undefined;
// Under AddressSanitizer (npm test's second JS run) the mount carries the sanitizer's
// shadow and quarantine, which alone outgrow the limit: the release run measures the cache.
const sanitized = (process.env['LD_PRELOAD'] ?? '').includes('asan') ? 'under AddressSanitizer: its own memory outgrows the limit' : undefined;
const cgroup = noFuse === undefined && noRoom === undefined && sanitized === undefined ? memoryCgroup() : undefined;
const skip = noFuse ?? noRoom ?? sanitized ?? (typeof cgroup === 'string' ? cgroup : false);

test('a 4 GiB cache file under a 512 MiB memory limit: 3 GiB read twice, the second pass without a fetch', { skip, timeout: 300_000 }, async (t) => {
  const cg = cgroup as MemoryCgroup;
  const base = mkdtempSync(path.join(os.tmpdir(), 'cmkit-bigcache-'));
  const backing = path.join(base, 'backing');
  const mountpoint = path.join(base, 'mnt');
  mkdirSync(backing);
  mkdirSync(mountpoint);
  let cli: ReturnType<typeof spawn> | undefined;
  try {
    const chunk = new Uint8Array(1 << 20);
    for (let f = 0; f < FILES; f++) {
      const fd = openSync(path.join(backing, `f${f}`), 'w');
      for (let off = 0; off < FILE_BYTES; off += chunk.length) {
        chunk.fill(f + 1);
        new DataView(chunk.buffer).setUint32(0, off);
        assert.equal(writeSync(fd, chunk, 0, chunk.length, off), chunk.length);
      }
      closeSync(fd);
    }
    // Into the cgroup before Node starts, so every page the mount touches counts.
    cli = spawn('sh', ['-c', `echo $$ > ${cg.dir}/cgroup.procs && exec "$0" "$@"`, process.execPath, CLI, 'mount', backing, mountpoint,
      '--cache-dir', path.join(base, 'cache-dir'), '--cache-size', '4G'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    cli.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    cli.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => cli!.on('exit', (code) => resolve(code)));
    // A mount stuck at its limit would leave this test's reads blocked for good: the
    // watchdog kills it, which ends them (ENOTCONN), and says why.
    let stuck = '';
    const started = Date.now();
    const watchdog = setInterval(() => {
      const why = cg.report().underOom ? 'stuck at its memory limit' : Date.now() - started > 240_000 ? 'still reading after 240 s' : '';
      if (why === '' || stuck !== '') return;
      stuck = why;
      cli!.kill('SIGKILL');
      if (mounted(mountpoint)) execFileSync('umount', ['-l', mountpoint]);
    }, 250);
    t.after(() => clearInterval(watchdog));
    while (!out.includes('cmkit: mounted')) {
      if (cli.exitCode !== null) throw new Error(`cmkit mount exited: ${out}`);
      assert.equal(stuck, '', `the mount is ${stuck}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const fetches = (): number => (JSON.parse(execFileSync(process.execPath, [CLI, 'stats', mountpoint], { encoding: 'utf8' })) as { server: { fetchData: number } }).server.fetchData;
    const readAll = async (): Promise<void> => {
      const buf = new Uint8Array(1 << 20);
      for (let f = 0; f < FILES; f++) {
        const h = await open(path.join(mountpoint, `f${f}`), 'r');
        try {
          for (let off = 0; off < FILE_BYTES; off += buf.length) {
            const n = (await h.read(buf, 0, buf.length, off)).bytesRead;
            assert.equal(stuck, '', `the mount is ${stuck}`);
            assert.equal(n, buf.length);
            assert.ok(buf[5] === f + 1 && new DataView(buf.buffer).getUint32(0) === off, `f${f} at ${off}`);
          }
        } finally {
          await h.close();
        }
        // The reader's own page cache must not serve the second pass.
        writeFileSync('/proc/sys/vm/drop_caches', '1');
      }
    };
    await readAll();
    const afterFirst = fetches();
    assert.ok(afterFirst > 0);
    await readAll();
    const second = fetches() - afterFirst;
    const { peak, oomKills } = cg.report();
    t.diagnostic(`first pass ${afterFirst} fetches, second ${second}; peak charged ${(peak / 2 ** 20).toFixed(0)} MiB of ${LIMIT / 2 ** 20}; OOM kills ${oomKills}`);
    assert.equal(second, 0, 'the second pass fetched nothing');
    assert.equal(oomKills, 0, 'never OOM-killed');
    assert.equal(cli.exitCode, null, 'the mount is still running');
    cli.kill('SIGTERM');
    assert.equal(await exited, 0, out);
  } finally {
    if (cli !== undefined && cli.exitCode === null) cli.kill('SIGKILL');
    if (mounted(mountpoint)) execFileSync('umount', ['-l', mountpoint]);
    await new Promise((r) => setTimeout(r, 200));
    rmSync(base, { recursive: true, force: true });
    try {
      cg?.remove();
    } catch {
      // a process may still be leaving it
    }
  }
});
