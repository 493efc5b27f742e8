/**
 * Store failures met through the mount as an unlucky operator meets them: a backing
 * directory on a tiny tmpfs that fills up, files deleted through the mount and outside it
 * while their data is unstored. Skipped where FUSE or a tmpfs mount is not available.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { fuseUnavailable } from '../src/mount/fuse.js';
import { withTmpfsMount } from './helpers/mount-process.js';

const skip = fuseUnavailable();
const MiB = 1024 * 1024;
const PER_WRITER = 6 * MiB;
const CHUNK = 256 * 1024;

/** The byte writer `id` puts at `offset`: every writer's bytes differ from every other's. */
function byteOf(id: number, offset: number): number {
  return (offset * 7 + id * 31 + 3) & 0xff;
}

/** A process that writes PER_WRITER bytes to `file`, then fsyncs and closes; it reports what each returned. */
function writer(id: number, file: string): Promise<{ written: number; fsync: string; close: string }> {
  const code = `
    const fs = require('fs');
    const fd = fs.openSync(process.argv[1], 'w');
    const buf = Buffer.alloc(${CHUNK});
    let written = 0;
    for (let off = 0; off < ${PER_WRITER}; off += ${CHUNK}) {
      for (let i = 0; i < buf.length; i++) buf[i] = ((off + i) * 7 + ${id} * 31 + 3) & 0xff;
      written += fs.writeSync(fd, buf, 0, buf.length, off);
    }
    const outcome = (f) => { try { f(); return 'ok'; } catch (e) { return e.code; } };
    const fsync = outcome(() => fs.fsyncSync(fd));
    const close = outcome(() => fs.closeSync(fd));
    console.log(JSON.stringify({ written, fsync, close }));`;
  const p = spawn(process.execPath, ['-e', code, file], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => p.on('exit', (c) => (c === 0 ? resolve(JSON.parse(out)) : reject(new Error(`writer ${id} exited ${c}: ${out}`)))));
}

test('a full backing tmpfs: ENOSPC (not EIO) while full, deleted files salvaged, the rest stored, the unmount done in 10 s', { skip, timeout: 120_000 }, async (t) => {
  await withTmpfsMount(t, 'full', '16m', (base) => ['--salvage-dir', path.join(base, 'salvage'), '--cache-size', '64M'], async (m, base) => {
    const backing = m.backing;
    const salvageDir = path.join(base, 'salvage');
    // 4 x 6 MiB into 16 MiB: every write is acknowledged (the cache holds it), the disk fills.
    const results = await Promise.all([0, 1, 2, 3].map((id) => writer(id, path.join(m.mountpoint, `w${id}`))));
    for (const r of results) assert.equal(r.written, PER_WRITER);
    const seen = results.flatMap((r) => [r.fsync, r.close]);
    assert.ok(seen.includes('ENOSPC'), `fsync or close said ENOSPC while the disk was full: ${JSON.stringify(results)}`);
    assert.ok(!seen.includes('EIO'), `never EIO: ${JSON.stringify(results)}`);
    // Which files still have unstored bytes depends on whose stores landed first: 8 MiB
    // did not fit, and one file holds at most 6 MiB of it, so at least two are incomplete.
    const complete = (id: number): boolean => {
      const got = readFileSync(path.join(backing, `w${id}`));
      return got.length === PER_WRITER && got.every((b, i) => b === byteOf(id, i));
    };
    const incomplete = [0, 1, 2, 3].filter((id) => !complete(id));
    assert.ok(incomplete.length >= 2, `files with unstored bytes: ${incomplete}`);
    const [viaMount, outside] = incomplete as [number, number];
    const kept = [0, 1, 2, 3].filter((id) => id !== viaMount && id !== outside);
    // One file deleted through the mount, one outside: their unstored bytes can never be stored.
    unlinkSync(path.join(m.mountpoint, `w${viaMount}`));
    unlinkSync(path.join(backing, `w${outside}`));
    const t0 = performance.now();
    const code = await m.stop('SIGTERM');
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(code, 0, m.output());
    assert.ok(seconds < 10, `unmounted in ${seconds.toFixed(1)} s`);
    for (const id of kept) {
      const got = readFileSync(path.join(backing, `w${id}`));
      assert.equal(got.length, PER_WRITER, `w${id}'s length`);
      for (let i = 0; i < got.length; i++) if (got[i] !== byteOf(id, i)) assert.fail(`w${id} differs at ${i}`);
    }
    assert.ok(!existsSync(path.join(backing, `w${viaMount}`)) && !existsSync(path.join(backing, `w${outside}`)));
    // What the deleted files held unstored is in the salvage directory, each range as written.
    const salvaged = readdirSync(salvageDir).filter((n) => n !== 'salvage.log');
    assert.ok(salvaged.length > 0, 'something was salvaged');
    for (const name of salvaged) {
      const offset = Number(name.split('@')[1]!.split('+')[0]);
      const bytes = readFileSync(path.join(salvageDir, name));
      const owner = [viaMount, outside].find((id) => bytes.every((b, i) => b === byteOf(id, offset + i)));
      assert.notEqual(owner, undefined, `${name} holds the bytes of a deleted file at its offset`);
    }
    assert.match(m.output(), /CMKIT_SALVAGED/);
  });
});

test('a store refused for good is reported once to each open handle, by fsync or close, with its errno', { skip, timeout: 60_000 }, async (t) => {
  await withTmpfsMount(t, 'errseq', '16m', (base) => ['--salvage-dir', path.join(base, 'salvage')], async (m, base) => {
    // The backing file is made immutable (EPERM: refused for good) between the writes and
    // the fsyncs. Unlinking it would not do: the mount holds an open file, so its stores
    // land in it, as writes to an unlinked open file do on a local file system. The
    // parent runs chattr: a process the writer forked would close, and so flush, its files.
    const code = `
      const fs = require('fs');
      const file = process.argv[1];
      const outcome = (f) => { try { f(); return 'ok'; } catch (e) { return e.code; } };
      const a = fs.openSync(file, 'w');
      const b = fs.openSync(file, 'r+');
      fs.writeSync(b, Buffer.from('b'), 0, 1, 0);
      fs.writeSync(a, Buffer.alloc(100 * 1024, 7), 0, 100 * 1024, 1);
      console.log('written');
      fs.readSync(0, Buffer.alloc(1)); // until the parent has made the file immutable
      const seen = [outcome(() => fs.fsyncSync(a)), outcome(() => fs.fsyncSync(a)), outcome(() => fs.fsyncSync(b)),
        outcome(() => fs.closeSync(b)), outcome(() => fs.closeSync(a))];
      console.log(JSON.stringify(seen));`;
    const backingFile = path.join(m.backing, 'f');
    let immutable = false;
    try {
      const out = await new Promise<string>((resolve, reject) => {
        const p = spawn(process.execPath, ['-e', code, path.join(m.mountpoint, 'f')], { stdio: ['pipe', 'pipe', 'inherit'] });
        let text = '';
        p.stdout!.on('data', (d: Buffer) => {
          text += d.toString();
          if (!immutable && text.includes('written')) {
            try {
              execFileSync('chattr', ['+i', backingFile], { stdio: 'pipe' });
              immutable = true;
            } catch {
              p.kill();
            }
            p.stdin!.end('x');
          }
        });
        p.on('exit', (c) => (c === 0 ? resolve(text) : reject(new Error(`exited ${c}: ${text}`))));
      }).catch((e: unknown) => {
        if (!immutable) return undefined;
        throw e;
      });
      if (out === undefined) {
        t.skip('chattr +i does not work on this tmpfs');
        return;
      }
      // a: told once (its fsync), then clean; b: told once (its fsync), its close clean.
      assert.deepEqual(JSON.parse(out.slice(out.indexOf('['))), ['EPERM', 'ok', 'EPERM', 'ok', 'ok']);
    } finally {
      if (immutable) execFileSync('chattr', ['-i', backingFile]);
    }
    const salvaged = readdirSync(path.join(base, 'salvage')).filter((n) => n !== 'salvage.log');
    assert.equal(salvaged.reduce((n, name) => n + readFileSync(path.join(base, 'salvage', name)).length, 0), 100 * 1024 + 1, 'every unstored byte salvaged');
  });
});

test('while stores fail (a full disk) and after they recover, stat and read through the mount always agree', { skip, timeout: 120_000 }, async (t) => {
  await withTmpfsMount(t, 'agree', '16m', (base) => ['--salvage-dir', path.join(base, 'salvage')], async (m) => {
    const filler = path.join(m.backing, 'filler');
    writeFileSync(filler, Buffer.alloc(15 * MiB, 1)); // written outside: the disk is nearly full
    const code = `
      const fs = require('fs');
      const [file, existing] = process.argv.slice(1);
      const samples = [];
      const sample = (what) => {
        for (const p of [file, existing]) {
          const size = fs.statSync(p).size;
          const read = fs.readFileSync(p).length;
          samples.push({ what, p, size, read });
        }
      };
      fs.writeFileSync(existing, 'ninebytes');
      const a = fs.openSync(file, 'w');
      const b = fs.openSync(existing, 'r+');
      for (let off = 0; off < 3 * 1024 * 1024; off += 256 * 1024) fs.writeSync(a, Buffer.alloc(256 * 1024, 5), 0, 256 * 1024, off);
      fs.writeSync(b, Buffer.alloc(256 * 1024, 6), 0, 256 * 1024, 0);
      sample('written');
      const failed = [];
      for (let i = 0; i < 3; i++) {
        for (const fd of [a, b]) { try { fs.fsyncSync(fd); failed.push('ok'); } catch (e) { failed.push(e.code); } }
        sample('after a failed store ' + i);
      }
      process.stdout.write(JSON.stringify({ failed }) + '\\n');
      // The operator frees space; the test tells us when.
      process.stdin.once('data', () => {
        process.stdin.destroy();
        sample('space freed');
        fs.fsyncSync(a); fs.fsyncSync(b);
        sample('stored');
        fs.closeSync(a); fs.closeSync(b);
        sample('closed');
        process.stdout.write(JSON.stringify({ samples }) + '\\n');
      });`;
    const p = spawn(process.execPath, ['-e', code, path.join(m.mountpoint, 'new'), path.join(m.mountpoint, 'existing')], { stdio: ['pipe', 'pipe', 'inherit'] });
    t.after(() => p.kill());
    const lines: string[] = [];
    let buf = '';
    const nextLine = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const i = buf.indexOf('\n');
          if (i >= 0) {
            lines.push(buf.slice(0, i));
            buf = buf.slice(i + 1);
            resolve(lines[lines.length - 1]!);
          } else if (p.exitCode !== null) reject(new Error(`writer exited ${p.exitCode}`));
          else setTimeout(check, 20);
        };
        check();
      });
    p.stdout!.on('data', (d: Buffer) => (buf += d.toString()));
    const { failed } = JSON.parse(await nextLine()) as { failed: string[] };
    assert.ok(failed.includes('ENOSPC'), `the stores failed while the disk was full: ${failed}`);
    unlinkSync(filler);
    p.stdin!.write('go\n');
    const { samples } = JSON.parse(await nextLine()) as { samples: Array<{ what: string; p: string; size: number; read: number }> };
    for (const s of samples) assert.equal(s.size, s.read, `${s.what}: ${path.basename(s.p)} stats as ${s.size} and reads ${s.read}`);
    const final = samples.filter((s) => s.what === 'closed').map((s) => s.size);
    assert.deepEqual(final, [3 * MiB, 256 * 1024]);
    assert.equal(readFileSync(path.join(m.backing, 'new')).length, 3 * MiB);
    assert.equal(readFileSync(path.join(m.backing, 'existing')).length, 256 * 1024);
  });
});
