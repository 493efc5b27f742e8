/**
 * The mount's name cache (src/mount/name-cache.ts): a tree walked again is answered
 * without the server once the kernel's own 1 s copies have expired; every change made
 * through the mount shows at once, as on a local file system; a change made outside shows
 * within --names-timeout.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, linkSync, mkdirSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { fuseUnavailable } from '../src/mount/fuse.js';
import type { MountStats } from '../src/mount/cache-mount.js';
import { CLI, withMount } from './helpers/mount-process.js';

const skip = fuseUnavailable();
/** Past the kernel's entry and attribute timeouts (1 s): it asks the mount again. */
const PAST_KERNEL_TIMEOUTS_MS = 1200;

function namespaceRpcs(mnt: string): number {
  return (JSON.parse(execFileSync(process.execPath, [CLI, 'stats', mnt], { encoding: 'utf8' })) as MountStats).server.namespace;
}

/** 100 files in 10 directories under `root`; returns how many directories there are (11). */
function makeTree(root: string): number {
  for (let d = 0; d < 5; d++) {
    mkdirSync(path.join(root, `d${d}`, 'sub'), { recursive: true });
    for (let f = 0; f < 20; f++) writeFileSync(path.join(root, `d${d}`, f % 2 === 0 ? 'sub' : '', `f${f}`), `file ${d}/${f}`);
  }
  return 11;
}

for (const [label, extra, cached] of [
  ['default (10 s)', [], true],
  ['--names-timeout 0', ['--names-timeout', '0'], false],
] as const) {
  test(`a tree listed again after the kernel's timeouts: ${cached ? 'no server round trip' : 'the server asked again'} (${label})`, { skip, timeout: 60_000 }, async () => {
    await withMount('names', [...extra], async (m) => {
      const dirs = makeTree(m.backing);
      const first = execFileSync('ls', ['-lR', m.mountpoint], { encoding: 'utf8' });
      await sleep(PAST_KERNEL_TIMEOUTS_MS);
      const before = namespaceRpcs(m.mountpoint);
      const again = execFileSync('ls', ['-lR', m.mountpoint], { encoding: 'utf8' });
      const asked = namespaceRpcs(m.mountpoint) - before;
      assert.equal(again, first, 'the same listing');
      if (cached) assert.equal(asked, 0, 'every name and attribute from the name cache');
      // Uncached, each directory's listing is asked again (one readdir RPC, its entries'
      // attributes with it), and each name the kernel looks up.
      else assert.ok(asked >= dirs, `${asked} namespace RPCs for ${dirs} directories: the server is asked again`);
    });
  });
}

test('changes made through the mount show at once, after the kernel has let its copies go too', { skip, timeout: 60_000 }, async () => {
  await withMount('names', [], async (m) => {
    makeTree(m.backing);
    const mnt = (...p: string[]): string => path.join(m.mountpoint, ...p);
    execFileSync('ls', ['-lR', m.mountpoint], { stdio: 'ignore' }); // everything in the name cache
    await sleep(PAST_KERNEL_TIMEOUTS_MS);

    chmodSync(mnt('d0', 'f1'), 0o600);
    writeFileSync(mnt('d1', 'new'), 'created');
    unlinkSync(mnt('d2', 'f1'));
    renameSync(mnt('d3', 'f1'), mnt('d3', 'sub', 'moved'));
    linkSync(mnt('d4', 'f1'), mnt('d4', 'linked'));
    const mtimeBefore = statSync(mnt('d4', 'f3')).mtimeMs;
    await sleep(20);
    appendFileSync(mnt('d4', 'f3'), ' and more');
    await sleep(PAST_KERNEL_TIMEOUTS_MS);

    assert.equal(statSync(mnt('d0', 'f1')).mode & 0o777, 0o600, 'chmod');
    assert.ok(readdirSync(mnt('d1')).includes('new'), 'create: in the listing');
    assert.equal(statSync(mnt('d1', 'new')).size, 7, 'create: its size');
    assert.ok(!readdirSync(mnt('d2')).includes('f1'), 'unlink: gone from the listing');
    assert.throws(() => statSync(mnt('d2', 'f1')), { code: 'ENOENT' });
    assert.ok(!readdirSync(mnt('d3')).includes('f1') && readdirSync(mnt('d3', 'sub')).includes('moved'), 'rename: both listings');
    assert.equal(statSync(mnt('d4', 'f1')).nlink, 2, 'link: the other name sees nlink 2');
    assert.equal(statSync(mnt('d4', 'f3')).size, 'file 4/3 and more'.length, 'a write: the size');
    assert.ok(statSync(mnt('d4', 'f3')).mtimeMs > mtimeBefore, 'a write: the mtime moved');
  });
});

test('a change made outside the mount shows within --names-timeout', { skip, timeout: 60_000 }, async () => {
  await withMount('names', ['--names-timeout', '1'], async (m) => {
    makeTree(m.backing);
    execFileSync('ls', ['-lR', m.mountpoint], { stdio: 'ignore' });
    writeFileSync(path.join(m.backing, 'd0', 'outside'), 'x');
    chmodSync(path.join(m.backing, 'd1', 'f1'), 0o640);
    // The kernel's second and the name cache's, and a margin.
    await sleep(2500);
    assert.ok(readdirSync(path.join(m.mountpoint, 'd0')).includes('outside'), 'a name created outside');
    assert.equal(statSync(path.join(m.mountpoint, 'd1', 'f1')).mode & 0o777, 0o640, 'a chmod made outside');
  });
});
