/**
 * `cmkit mount` against POSIX as a local file system gives it, as root and as an
 * unprivileged user: the conformance cases (helpers/posix-cases.ts) on a local directory
 * first, then through the mount; overwrites that fetch nothing; names as bytes; and a
 * hostile user who swaps directories for symlinks in the backing directory, reaching
 * nothing outside it. Skipped, with the reason, where FUSE cannot be used.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { fuseUnavailable } from '../src/mount/fuse.js';
import type { MountStats } from '../src/mount/cache-mount.js';
import type { Ctx } from './helpers/posix-cases.js';
import { asUser, CLI, testUser, withMount, type TestUser } from './helpers/mount-process.js';

const skip = fuseUnavailable();
const user = testUser();
const noUser = typeof user === 'string' ? user : undefined;
if (noUser !== undefined) console.log(`# unprivileged runs skipped: ${noUser}`);
const RUNNER = path.join(__dirname, 'workers', 'posix-runner.js');

interface Result {
  name: string;
  ok: boolean;
  message?: string;
}

/** Runs every case under `base` as root, or as the test user; returns the failures. */
function runCases(base: string, as: 'root' | TestUser): Result[] {
  mkdirSync(base, { recursive: true });
  let ctx: Ctx;
  let argv: string[];
  if (as === 'root') {
    const u = user as TestUser;
    ctx = { root: true, uid: 0, gid: 0, otherUid: u.uid, extraGid: u.extraGid, foreignGid: u.gid };
    argv = [process.execPath, RUNNER, base, JSON.stringify(ctx)];
  } else {
    chownSync(base, as.uid, as.gid);
    ctx = { root: false, uid: as.uid, gid: as.gid, otherUid: 0, extraGid: as.extraGid, foreignGid: 0 };
    argv = [...asUser(as), process.execPath, RUNNER, base, JSON.stringify(ctx)];
  }
  const results = JSON.parse(execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: 64 << 20 })) as Result[];
  assert.ok(results.length >= 150, `${results.length} cases ran`);
  return results.filter((r) => !r.ok);
}

function checkAll(base: string, where: string): void {
  for (const as of ['root', user as TestUser] as const) {
    const failed = runCases(path.join(base, as === 'root' ? 'root' : 'user'), as);
    const who = as === 'root' ? 'root' : 'the unprivileged user';
    assert.deepEqual(failed.map((f) => `${f.name}: ${f.message}`), [], `cases that failed on ${where} as ${who}`);
  }
}

test('the POSIX cases pass on a local directory, as root and as an unprivileged user', { skip: noUser }, () => {
  const base = mkdtempSync(path.join(os.tmpdir(), 'cmkit-posix-local-'));
  try {
    chmodSync(base, 0o755);
    checkAll(base, 'the local directory');
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

for (const [label, extra] of [
  ['default options', []],
  ['no request workers', ['--workers', '0']],
  ['caching off', ['--no-cache']],
] as const) {
  test(`the POSIX cases pass through cmkit mount (${label}), as root and as an unprivileged user`, { skip: skip ?? noUser, timeout: 180_000 }, async () => {
    await withMount('posix', [...extra], async (m) => {
      chmodSync(path.dirname(m.mountpoint), 0o755); // mkdtemp's 0700 would keep the user out
      chmodSync(m.backing, 0o755);
      checkAll(m.mountpoint, 'the mount');
    });
  });
}

function stats(mountpoint: string): MountStats {
  return JSON.parse(execFileSync(process.execPath, [CLI, 'stats', mountpoint], { encoding: 'utf8' })) as MountStats;
}

test('echo NEW > f over a longer file and cp of a shorter file over a longer one: exact contents, nothing fetched', { skip, timeout: 60_000 }, async () => {
  await withMount('otrunc', [], async (m) => {
    writeFileSync(path.join(m.backing, 'f'), 'old contents, forty-two bytes long......\n');
    writeFileSync(path.join(m.backing, 'long'), 'L'.repeat(200_000));
    const short = path.join(m.backing, '..', 'short');
    writeFileSync(short, 'short file\n');
    const before = stats(m.mountpoint).server;
    execFileSync('sh', ['-c', `echo NEW > '${path.join(m.mountpoint, 'f')}'`]);
    execFileSync('cp', [short, path.join(m.mountpoint, 'long')]);
    const after = stats(m.mountpoint).server;
    assert.equal(readFileSync(path.join(m.mountpoint, 'f'), 'utf8'), 'NEW\n');
    assert.equal(readFileSync(path.join(m.backing, 'f'), 'utf8'), 'NEW\n');
    assert.equal(readFileSync(path.join(m.mountpoint, 'long'), 'utf8'), 'short file\n');
    assert.equal(readFileSync(path.join(m.backing, 'long'), 'utf8'), 'short file\n');
    assert.equal(after.bytesFetched - before.bytesFetched, 0, 'the overwrites fetched nothing');
  });
});

test('names with bytes 0x80-0xff round-trip to the backing directory, and two that differ only there stay two', { skip, timeout: 60_000 }, async () => {
  await withMount('bytes', [], async (m) => {
    const names: Buffer[] = [];
    for (let b = 0x80; b <= 0xff; b++) names.push(Buffer.from([0x6e, b]));
    for (const n of names) writeFileSync(Buffer.concat([Buffer.from(m.mountpoint + '/'), n]), n);
    const inBacking = readdirSync(m.backing, { encoding: 'buffer' }).map((b) => b.toString('hex')).sort();
    assert.deepEqual(inBacking, names.map((n) => n.toString('hex')).sort());
    for (const n of names) assert.deepEqual(readFileSync(Buffer.concat([Buffer.from(m.backing + '/'), n])), n);
    // Made outside, seen inside.
    writeFileSync(Buffer.concat([Buffer.from(m.backing + '/'), Buffer.from([0x6f, 0xff])]), 'outside');
    assert.equal(readFileSync(Buffer.concat([Buffer.from(m.mountpoint + '/'), Buffer.from([0x6f, 0xff])]), 'utf8'), 'outside');
  });
});

/** What an outside file looks like: contents, mode, owner and times. */
function snapshot(file: string): string {
  const data = readFileSync(file).toString('hex'); // first: a read may move atime once (relatime)
  const st = statSync(file, { bigint: true });
  return JSON.stringify({ data, mode: st.mode.toString(), uid: st.uid.toString(), gid: st.gid.toString(), mtime: st.mtimeNs.toString(), atime: st.atimeNs.toString(), ctime: st.ctimeNs.toString() });
}

test('a hostile user swapping directories for symlinks in the backing directory reaches nothing outside it', { skip: skip ?? noUser, timeout: 60_000 }, async () => {
  const u = user as TestUser;
  const outside = mkdtempSync(path.join(os.tmpdir(), 'cmkit-outside-'));
  chmodSync(outside, 0o700);
  const secret = path.join(outside, 'f');
  writeFileSync(secret, 'ROOT SECRET', { mode: 0o600 });
  writeFileSync(path.join(outside, 'other'), 'ROOT OTHER', { mode: 0o644 });
  const before = [snapshot(secret), snapshot(path.join(outside, 'other'))];
  try {
    await withMount('hostile', [], async (m) => {
      chmodSync(path.dirname(m.mountpoint), 0o755);
      chmodSync(m.backing, 0o777);
      const mnt = m.mountpoint;
      const back = m.backing;
      // 1. The symlink swap under an open file, read and write, as the user.
      const script = [
        'set -u',
        `mkdir ${mnt}/d && echo mine > ${mnt}/d/f`,
        `exec 3<> ${mnt}/d/f`,
        `mv ${back}/d ${back}/d-away && ln -s ${outside} ${back}/d`,
        `cat <&3 || true`,
        `echo HACKED >&3 || true`,
        'exec 3>&- || true',
        `cat ${mnt}/d/f 2>/dev/null || true`,
        `echo more >> ${mnt}/d/f 2>/dev/null || true`,
        // 2. A symlink of the user's pointing outside: touch -h, chown -h, chmod through the mount.
        `ln -s ${secret} ${back}/link`,
        `touch -h ${mnt}/link || true`,
        `chown -h ${u.uid}:${u.extraGid} ${mnt}/link || true`,
        `chmod 777 ${mnt}/link 2>/dev/null || true`,
        `touch -h -d 2001-01-01 ${mnt}/link || true`,
        // 3. A directory of the mount replaced by a symlink outside, while the kernel knows it.
        `mkdir ${mnt}/sub && echo in > ${mnt}/sub/other && ls ${mnt}/sub > /dev/null`,
        `mv ${back}/sub ${back}/sub-away && ln -s ${outside} ${back}/sub`,
        `cat ${mnt}/sub/other 2>/dev/null || true`,
        `echo HACKED > ${mnt}/sub/other 2>/dev/null || true`,
        `echo HACKED > ${mnt}/sub/new 2>/dev/null || true`,
        `touch ${mnt}/sub/other 2>/dev/null || true`,
        `rm -f ${mnt}/sub/other 2>/dev/null || true`,
        `ls ${mnt}/sub 2>/dev/null || true`,
      ].join('\n');
      const seen = execFileSync(asUser(u)[0]!, [...asUser(u).slice(1), 'bash', '-c', script], { encoding: 'utf8' });
      assert.ok(!seen.includes('ROOT'), `the user read an outside file: ${seen}`);
      // The write of HACKED was acknowledged, and its store can never succeed (ELOOP):
      // the unmount keeps it and retries until a second signal gives it up.
      m.cli.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 1500));
      m.cli.kill('SIGTERM');
      await m.exited;
    });
    assert.deepEqual([snapshot(secret), snapshot(path.join(outside, 'other'))], before, 'outside files unchanged: contents, mode, owner, times');
    assert.deepEqual(readdirSync(outside).sort(), ['f', 'other'], 'nothing created outside');
  } finally {
    rmSync(outside, { recursive: true, force: true });
  }
});

test('git clone, npm ci with bin links and tar x of a tree with symlinks and hard links, all through the mount', { skip, timeout: 180_000 }, async () => {
  await withMount('tools', [], async (m) => {
    const work = path.join(m.backing, '..', 'work');
    mkdirSync(work);
    const sh = (cmd: string, cwd = work): string => execFileSync('sh', ['-c', cmd], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    // git: a repository with a symlink and an executable, cloned from a local bare one.
    sh('git init -q src && cd src && echo data > a && ln -s a link && printf "#!/bin/sh\\necho ran\\n" > run.sh && chmod +x run.sh && ' +
      'git add . && git -c user.email=t@example.invalid -c user.name=t commit -qm one && cd .. && git clone -q --bare src bare.git');
    sh(`git clone -q ${work}/bare.git clone`, m.mountpoint);
    const clone = path.join(m.mountpoint, 'clone');
    assert.equal(sh('readlink link', clone).trim(), 'a');
    assert.equal(sh('./run.sh', clone).trim(), 'ran');
    assert.equal(sh('git status --porcelain', clone), '', 'a clean work tree');
    sh('git fsck --no-progress', clone);
    // npm ci: a project whose dependency (a local tarball) has a bin.
    sh('mkdir -p dep/bin && cd dep && printf "{\\"name\\":\\"cmkit-dep\\",\\"version\\":\\"1.0.0\\",\\"bin\\":{\\"cmkit-dep\\":\\"bin/cli.js\\"}}" > package.json && ' +
      'printf "#!/usr/bin/env node\\nconsole.log(\\"dep ran\\")\\n" > bin/cli.js && chmod +x bin/cli.js && npm pack -q --silent > /dev/null');
    sh('mkdir proj && cd proj && printf "{\\"name\\":\\"proj\\",\\"version\\":\\"1.0.0\\",\\"dependencies\\":{\\"cmkit-dep\\":\\"file:../dep/cmkit-dep-1.0.0.tgz\\"}}" > package.json && ' +
      'npm install -q --offline --no-audit --no-fund > /dev/null && rm -rf node_modules');
    sh(`cp -r ${work}/proj ${m.mountpoint}/proj && cp ${work}/dep/cmkit-dep-1.0.0.tgz ${m.mountpoint}/`);
    sh(`sed -i 's#file:../dep/cmkit-dep-1.0.0.tgz#file:../cmkit-dep-1.0.0.tgz#' package.json package-lock.json && npm ci -q --offline --no-audit --no-fund > /dev/null`, path.join(m.mountpoint, 'proj'));
    assert.equal(sh('npx --offline cmkit-dep', path.join(m.mountpoint, 'proj')).trim(), 'dep ran');
    assert.ok(sh('ls -l node_modules/.bin', path.join(m.mountpoint, 'proj')).includes('-> ../cmkit-dep/bin/cli.js'));
    // tar: symlinks and hard links out and in again.
    sh('mkdir -p tree/d && echo one > tree/d/f && ln tree/d/f tree/hard && ln -s d/f tree/soft && ln -s /nowhere tree/dangling && tar cf tree.tar tree');
    sh(`tar xf ${work}/tree.tar`, m.mountpoint);
    sh(`diff -r --no-dereference ${work}/tree ${m.mountpoint}/tree`);
    const inner = path.join(m.mountpoint, 'tree');
    assert.equal(statSync(path.join(inner, 'hard')).ino, statSync(path.join(inner, 'd', 'f')).ino, 'the hard link is one inode');
    assert.equal(statSync(path.join(inner, 'hard')).nlink, 2);
    assert.equal(sh('readlink tree/soft tree/dangling', m.mountpoint), 'd/f\n/nowhere\n');
  });
});
