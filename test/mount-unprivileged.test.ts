/**
 * `cmkit mount` run by an unprivileged user: mount(2) is refused, so the addon has
 * fusermount3 (Debian's fuse3) mount it and pass the descriptor back, and unmount it at
 * the end. The user's files are the user's; root, without allow_other, is kept out, as
 * the kernel keeps everyone but the mounting user out of a user's FUSE mount.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { fuseUnavailable } from '../src/mount/fuse.js';
import { asUser, mount, mounted, testUser, type Mounted } from './helpers/mount-process.js';

function helperMissing(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v fusermount3'], { encoding: 'utf8' }).stdout.trim();
  if (found === '') return 'fusermount3 is not installed (Debian: apt-get install fuse3)';
  if ((statSync(found).mode & 0o4000) === 0) return `${found} is not setuid root`;
  return undefined;
}

test('an unprivileged user mounts through fusermount3, owns what it creates, keeps root out, and unmounts', async (t) => {
  const why = fuseUnavailable() ?? helperMissing();
  const user = testUser();
  if (why !== undefined) return t.skip(why);
  if (typeof user === 'string') return t.skip(user);
  // Debian's udev makes /dev/fuse 0666; a machine that left it 0600 gets that for the test.
  const devMode = statSync('/dev/fuse').mode & 0o777;
  if ((devMode & 0o006) !== 0o006) chmodSync('/dev/fuse', 0o666);
  const base = mkdtempSync(path.join(os.tmpdir(), 'cmkit-unpriv-'));
  const backing = path.join(base, 'backing');
  const mnt = path.join(base, 'mnt');
  mkdirSync(backing);
  mkdirSync(mnt);
  for (const p of [base, backing, mnt]) chownSync(p, user.uid, user.gid);
  const as = asUser(user);
  let m: Mounted | undefined;
  try {
    m = await mount(base, [], as);
    const line = readFileSync('/proc/self/mounts', 'utf8').split('\n').find((l) => l.split(' ')[1] === mnt);
    assert.ok(line !== undefined, 'the mount is listed');
    assert.match(line, /^cmkit \S+ fuse\.cmkit /);
    assert.match(line, new RegExp(`user_id=${user.uid},group_id=${user.gid}`), 'mounted by the user, not by root');

    const f = path.join(mnt, 'f');
    const shown = execFileSync(as[0]!, [...as.slice(1), 'sh', '-c', `printf hello > ${f} && cat ${f} && stat -c ' %u %g' ${f}`], {
      encoding: 'utf8',
    });
    assert.equal(shown.trimEnd(), `hello ${user.uid} ${user.gid}`);
    assert.throws(() => statSync(f), { code: 'EACCES' }, 'root is not let in without allow_other');

    assert.equal(await m.stop('SIGTERM'), 0, m.output());
    assert.equal(mounted(mnt), false, 'fusermount3 unmounted it');
    assert.deepEqual(readdirSync(mnt), []);
    const st = statSync(path.join(backing, 'f'));
    assert.equal(readFileSync(path.join(backing, 'f'), 'utf8'), 'hello');
    assert.deepEqual([st.uid, st.gid], [user.uid, user.gid]);
  } finally {
    if (m !== undefined && m.cli.exitCode === null) m.cli.kill('SIGKILL');
    if (mounted(mnt)) execFileSync('umount', ['-l', mnt]);
    if ((devMode & 0o006) !== 0o006) chmodSync('/dev/fuse', devMode);
    rmSync(base, { recursive: true, force: true });
  }
});
