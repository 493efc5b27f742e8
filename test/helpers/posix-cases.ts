/**
 * The project's own POSIX conformance cases, in the areas pjdfstest covers: open flags,
 * truncate, chmod, chown, link, symlink, mkdir, rmdir, rename, unlink (of open files
 * too), utimensat, mknod (FIFO), ENAMETOOLONG and paths near PATH_MAX, EFBIG, and names
 * as bytes. Each case runs in a fresh directory
 * with plain system calls and checks both the errno and the state left behind.
 *
 * The same cases run on a local directory first (so they test POSIX as Linux gives it,
 * not the mount's own idea of it) and then through `cmkit mount`, each as root and as an
 * unprivileged user; where the answer depends on who asks, the case says so with `c.root`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

const { constants } = fs;

/** Who runs the cases, and the ids they may use. */
export interface Ctx {
  readonly root: boolean;
  readonly uid: number;
  readonly gid: number;
  /** Another user (root for the unprivileged run, the test user for root's). */
  readonly otherUid: number;
  /** A group the runner is in besides its own (0 when running as root). */
  readonly extraGid: number;
  /** A group the runner is not in (root's run: any). */
  readonly foreignGid: number;
}

export interface Case {
  readonly name: string;
  run(d: string, c: Ctx): void;
}

export const cases: Case[] = [];

function add(name: string, run: (d: string, c: Ctx) => void): void {
  cases.push({ name, run });
}

/** `fn` fails with `code` (an errno name). */
function fails(code: string, fn: () => unknown, what = ''): void {
  try {
    fn();
  } catch (e) {
    assert.equal((e as { code?: string }).code, code, `${what} failed with the wrong errno`);
    return;
  }
  assert.fail(`${what} succeeded; expected ${code}`);
}

const p = (d: string, ...names: string[]): string => [d, ...names].join('/');
const write = (f: string, s: string | Uint8Array, mode = 0o644): void => fs.writeFileSync(f, s, { mode });
const text = (f: string): string => fs.readFileSync(f, 'utf8');
const mode = (f: string): number => fs.lstatSync(f).mode & 0o7777;
const size = (f: string): number => fs.lstatSync(f).size;
const exists = (f: string): boolean => {
  try {
    fs.lstatSync(f);
    return true;
  } catch {
    return false;
  }
};
const long = (n: number): string => 'n'.repeat(n);
/** Root passes permission checks; others get `code`. */
function denied(c: Ctx, code: string, fn: () => unknown, what: string): void {
  if (c.root) fn();
  else fails(code, fn, what);
}
function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: 'pipe' });
}

// ---- open ------------------------------------------------------------------------------

add('open O_CREAT makes an empty file owned by the caller', (d, c) => {
  fs.closeSync(fs.openSync(p(d, 'f'), constants.O_CREAT | constants.O_WRONLY, 0o644));
  const st = fs.statSync(p(d, 'f'));
  assert.equal(st.size, 0);
  assert.equal(st.uid, c.uid);
  assert.equal(st.gid, c.gid);
  assert.ok(st.isFile());
});
for (const [m, umask] of [[0o644, 0o022], [0o600, 0o022], [0o777, 0o022], [0o620, 0], [0o666, 0], [0o777, 0], [0o000, 0], [0o751, 0o027]] as const) {
  add(`open O_CREAT mode ${m.toString(8)} under umask ${umask.toString(8)}`, (d) => {
    process.umask(umask);
    fs.closeSync(fs.openSync(p(d, 'f'), constants.O_CREAT | constants.O_WRONLY, m));
    assert.equal(mode(p(d, 'f')), m & ~umask);
  });
}
add('open O_CREAT mode 06755 keeps setuid and setgid for the owner', (d) => {
  process.umask(0);
  fs.closeSync(fs.openSync(p(d, 'f'), constants.O_CREAT | constants.O_WRONLY, 0o6755));
  assert.equal(mode(p(d, 'f')), 0o6755);
});
add('open O_CREAT|O_EXCL on an existing file: EEXIST, contents kept', (d) => {
  write(p(d, 'f'), 'keep');
  fails('EEXIST', () => fs.openSync(p(d, 'f'), constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o644));
  assert.equal(text(p(d, 'f')), 'keep');
});
add('open O_CREAT|O_EXCL on a dangling symlink: EEXIST, nothing created', (d) => {
  fs.symlinkSync('nowhere', p(d, 'l'));
  fails('EEXIST', () => fs.openSync(p(d, 'l'), constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o644));
  assert.equal(exists(p(d, 'nowhere')), false);
});
add('open O_CREAT|O_EXCL on an existing directory: EEXIST', (d) => {
  fs.mkdirSync(p(d, 'x'));
  fails('EEXIST', () => fs.openSync(p(d, 'x'), constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o644));
});
add('open O_CREAT without O_EXCL on an existing file keeps its contents', (d) => {
  write(p(d, 'f'), 'keep');
  fs.closeSync(fs.openSync(p(d, 'f'), constants.O_CREAT | constants.O_WRONLY, 0o600));
  assert.equal(text(p(d, 'f')), 'keep');
  assert.equal(mode(p(d, 'f')), 0o644, 'the mode of an existing file is not changed');
});
add('open O_TRUNC cuts a longer file to nothing', (d) => {
  write(p(d, 'f'), 'x'.repeat(42));
  fs.closeSync(fs.openSync(p(d, 'f'), constants.O_WRONLY | constants.O_TRUNC));
  assert.equal(size(p(d, 'f')), 0);
});
add('echo NEW > f over a 42-byte file leaves exactly NEW', (d) => {
  write(p(d, 'f'), 'y'.repeat(42));
  fs.writeFileSync(p(d, 'f'), 'NEW\n');
  assert.equal(text(p(d, 'f')), 'NEW\n');
});
add('O_TRUNC then write through another descriptor sees no old tail', (d) => {
  write(p(d, 'f'), 'abcdefghij');
  const a = fs.openSync(p(d, 'f'), 'r');
  fs.closeSync(fs.openSync(p(d, 'f'), constants.O_RDWR | constants.O_TRUNC));
  const b = fs.openSync(p(d, 'f'), 'r+');
  fs.writeSync(b, 'xy', 0);
  const buf = Buffer.alloc(20);
  assert.equal(fs.readSync(a, buf, 0, 20, 0), 2);
  assert.equal(buf.subarray(0, 2).toString(), 'xy');
  fs.closeSync(a);
  fs.closeSync(b);
});
add('O_TRUNC on a file without write permission: EACCES for others, contents kept', (d, c) => {
  write(p(d, 'f'), 'keep', 0o444);
  denied(c, 'EACCES', () => fs.closeSync(fs.openSync(p(d, 'f'), constants.O_WRONLY | constants.O_TRUNC)), 'O_TRUNC');
  assert.equal(size(p(d, 'f')), c.root ? 0 : 4);
});
add('open O_WRONLY of a read-only file: EACCES for others', (d, c) => {
  write(p(d, 'f'), 'ro', 0o444);
  denied(c, 'EACCES', () => fs.closeSync(fs.openSync(p(d, 'f'), constants.O_WRONLY)), 'O_WRONLY');
});
add('open O_RDONLY of a write-only file: EACCES for others', (d, c) => {
  write(p(d, 'f'), 'wo', 0o222);
  denied(c, 'EACCES', () => fs.closeSync(fs.openSync(p(d, 'f'), constants.O_RDONLY)), 'O_RDONLY');
});
add('open of a missing file: ENOENT', (d) => {
  fails('ENOENT', () => fs.openSync(p(d, 'missing'), constants.O_RDONLY));
});
add('open of a directory for writing: EISDIR', (d) => {
  fs.mkdirSync(p(d, 'x'));
  fails('EISDIR', () => fs.openSync(p(d, 'x'), constants.O_WRONLY));
});
add('open O_DIRECTORY of a file: ENOTDIR', (d) => {
  write(p(d, 'f'), '');
  fails('ENOTDIR', () => fs.openSync(p(d, 'f'), constants.O_RDONLY | constants.O_DIRECTORY));
});
add('open through a file as a directory: ENOTDIR', (d) => {
  write(p(d, 'f'), '');
  fails('ENOTDIR', () => fs.openSync(p(d, 'f', 'x'), constants.O_RDONLY));
});
add('open O_NOFOLLOW of a symlink: ELOOP', (d) => {
  write(p(d, 't'), 'target');
  fs.symlinkSync('t', p(d, 'l'));
  fails('ELOOP', () => fs.openSync(p(d, 'l'), constants.O_RDONLY | constants.O_NOFOLLOW));
});
add('open O_CREAT through a dangling symlink creates its target', (d) => {
  fs.symlinkSync('made', p(d, 'l'));
  fs.closeSync(fs.openSync(p(d, 'l'), constants.O_CREAT | constants.O_WRONLY, 0o600));
  assert.ok(fs.lstatSync(p(d, 'made')).isFile());
  assert.ok(fs.lstatSync(p(d, 'l')).isSymbolicLink());
});
add('open O_CREAT in a directory without write permission: EACCES for others', (d, c) => {
  fs.mkdirSync(p(d, 'ro'), 0o555);
  denied(c, 'EACCES', () => fs.closeSync(fs.openSync(p(d, 'ro', 'f'), constants.O_CREAT | constants.O_WRONLY, 0o644)), 'create');
});
add('open O_CREAT in a directory without search permission: EACCES for others', (d, c) => {
  fs.mkdirSync(p(d, 'nx'), 0o666);
  denied(c, 'EACCES', () => fs.closeSync(fs.openSync(p(d, 'nx', 'f'), constants.O_CREAT | constants.O_WRONLY, 0o644)), 'create');
});
add('O_APPEND: two descriptors appending interleave, nothing overwritten', (d) => {
  write(p(d, 'f'), '');
  const a = fs.openSync(p(d, 'f'), 'a');
  const b = fs.openSync(p(d, 'f'), 'a');
  for (let i = 0; i < 5; i++) {
    fs.writeSync(a, 'A');
    fs.writeSync(b, 'BB');
  }
  fs.closeSync(a);
  fs.closeSync(b);
  assert.equal(text(p(d, 'f')), 'ABB'.repeat(5));
});
add('O_APPEND after another descriptor grew the file appends at the new end', (d) => {
  write(p(d, 'f'), '12345');
  const a = fs.openSync(p(d, 'f'), 'a');
  const w = fs.openSync(p(d, 'f'), 'r+');
  fs.writeSync(w, 'abcdefgh', 5);
  fs.writeSync(a, 'Z');
  fs.closeSync(a);
  fs.closeSync(w);
  assert.equal(text(p(d, 'f')), '12345abcdefghZ');
});
add('O_EXCL without O_CREAT opens an existing file', (d) => {
  write(p(d, 'f'), 'x');
  fs.closeSync(fs.openSync(p(d, 'f'), constants.O_RDONLY | constants.O_EXCL));
});
add('write at an offset past the end leaves a hole of zeros', (d) => {
  write(p(d, 'f'), 'ab');
  const h = fs.openSync(p(d, 'f'), 'r+');
  fs.writeSync(h, 'Z', 10);
  fs.closeSync(h);
  assert.deepEqual([...fs.readFileSync(p(d, 'f'))], [97, 98, 0, 0, 0, 0, 0, 0, 0, 0, 90]);
});
add('what one descriptor writes another reads at once', (d) => {
  write(p(d, 'f'), '');
  const w = fs.openSync(p(d, 'f'), 'w');
  const r = fs.openSync(p(d, 'f'), 'r');
  fs.writeSync(w, 'hello');
  const buf = Buffer.alloc(10);
  assert.equal(fs.readSync(r, buf, 0, 10, 0), 5);
  fs.closeSync(w);
  fs.closeSync(r);
});
add('fsync and fdatasync of a written file succeed', (d) => {
  const h = fs.openSync(p(d, 'f'), 'w');
  fs.writeSync(h, 'data');
  fs.fsyncSync(h);
  fs.fdatasyncSync(h);
  fs.closeSync(h);
  assert.equal(text(p(d, 'f')), 'data');
});
add('cp of a shorter file over a longer one leaves exactly the shorter one', (d) => {
  write(p(d, 'long'), 'L'.repeat(5000));
  write(p(d, 'short'), 'short');
  run('cp', [p(d, 'short'), p(d, 'long')]);
  assert.equal(text(p(d, 'long')), 'short');
});

// ---- truncate --------------------------------------------------------------------------

add('truncate shrinks, keeping the head', (d) => {
  write(p(d, 'f'), 'abcdefgh');
  fs.truncateSync(p(d, 'f'), 3);
  assert.equal(text(p(d, 'f')), 'abc');
});
add('truncate grows with zeros', (d) => {
  write(p(d, 'f'), 'ab');
  fs.truncateSync(p(d, 'f'), 5);
  assert.deepEqual([...fs.readFileSync(p(d, 'f'))], [97, 98, 0, 0, 0]);
});
add('ftruncate to 0 then write', (d) => {
  write(p(d, 'f'), 'abcdef');
  const h = fs.openSync(p(d, 'f'), 'r+');
  fs.ftruncateSync(h, 0);
  fs.writeSync(h, 'Q', 0);
  fs.closeSync(h);
  assert.equal(text(p(d, 'f')), 'Q');
});
add('shrink then grow: the cut bytes come back as zeros', (d) => {
  write(p(d, 'f'), 'abcdef');
  fs.truncateSync(p(d, 'f'), 2);
  fs.truncateSync(p(d, 'f'), 4);
  assert.deepEqual([...fs.readFileSync(p(d, 'f'))], [97, 98, 0, 0]);
});
add('ftruncate of a descriptor open read-only: EINVAL', (d) => {
  write(p(d, 'f'), 'abc');
  const h = fs.openSync(p(d, 'f'), 'r');
  fails('EINVAL', () => fs.ftruncateSync(h, 1));
  fs.closeSync(h);
  assert.equal(size(p(d, 'f')), 3);
});
add('truncate of a directory: EISDIR', (d) => {
  fs.mkdirSync(p(d, 'x'));
  fails('EISDIR', () => fs.truncateSync(p(d, 'x'), 0));
});
add('truncate of a missing file: ENOENT', (d) => {
  fails('ENOENT', () => fs.truncateSync(p(d, 'missing'), 0));
});
add('truncate without write permission: EACCES for others', (d, c) => {
  write(p(d, 'f'), 'abc', 0o444);
  denied(c, 'EACCES', () => fs.truncateSync(p(d, 'f'), 1), 'truncate');
  assert.equal(size(p(d, 'f')), c.root ? 1 : 3);
});
add('truncate(2) by path moves mtime and ctime', (d) => {
  write(p(d, 'f'), 'abcdef');
  fs.utimesSync(p(d, 'f'), 1_000_000, 1_000_000);
  const before = fs.statSync(p(d, 'f'), { bigint: true });
  fs.truncateSync(p(d, 'f'), 2);
  const after = fs.statSync(p(d, 'f'), { bigint: true });
  assert.ok(after.mtimeNs > before.mtimeNs, 'mtime moved');
  assert.ok(after.ctimeNs >= before.ctimeNs, 'ctime moved');
});
add('ftruncate moves mtime', (d) => {
  write(p(d, 'f'), 'abcdef');
  fs.utimesSync(p(d, 'f'), 1_000_000, 1_000_000);
  const h = fs.openSync(p(d, 'f'), 'r+');
  fs.ftruncateSync(h, 1);
  fs.closeSync(h);
  assert.ok(fs.statSync(p(d, 'f')).mtimeMs > 1_000_000_000);
});
add('truncate past the largest file size: EFBIG, size kept', (d) => {
  write(p(d, 'f'), 'abc');
  fails('EFBIG', () => fs.truncateSync(p(d, 'f'), 2 ** 50));
  assert.equal(size(p(d, 'f')), 3);
});
add('ftruncate past the largest file size: EFBIG', (d) => {
  write(p(d, 'f'), 'abc');
  const h = fs.openSync(p(d, 'f'), 'r+');
  fails('EFBIG', () => fs.ftruncateSync(h, 2 ** 52));
  fs.closeSync(h);
  assert.equal(size(p(d, 'f')), 3);
});
add('pwrite past the largest file size: EFBIG, size kept', (d) => {
  write(p(d, 'f'), 'abc');
  const h = fs.openSync(p(d, 'f'), 'r+');
  fails('EFBIG', () => fs.writeSync(h, 'x', 2 ** 50));
  fails('EFBIG', () => fs.writeSync(h, 'x', 2 ** 53 - 2));
  fs.closeSync(h);
  assert.equal(size(p(d, 'f')), 3);
});

// ---- chmod -----------------------------------------------------------------------------

for (const m of [0o600, 0o640, 0o755, 0o000, 0o1777, 0o4755, 0o2755, 0o7777]) {
  add(`chmod ${m.toString(8)} of one's own file`, (d) => {
    write(p(d, 'f'), 'x');
    fs.chmodSync(p(d, 'f'), m);
    assert.equal(mode(p(d, 'f')), m);
  });
}
add('chmod of a directory', (d) => {
  fs.mkdirSync(p(d, 'x'));
  fs.chmodSync(p(d, 'x'), 0o711);
  assert.equal(mode(p(d, 'x')), 0o711);
});
add('chmod through a symlink changes the target, not the link', (d) => {
  write(p(d, 't'), 'x', 0o644);
  fs.symlinkSync('t', p(d, 'l'));
  fs.chmodSync(p(d, 'l'), 0o600);
  assert.equal(mode(p(d, 't')), 0o600);
  assert.equal(fs.lstatSync(p(d, 'l')).mode & 0o777, 0o777);
});
add('chmod of a missing file: ENOENT', (d) => {
  fails('ENOENT', () => fs.chmodSync(p(d, 'missing'), 0o600));
});
add("chmod of another user's file: EPERM for others", (d, c) => {
  if (c.root) {
    write(p(d, 'f'), 'x');
    fs.chownSync(p(d, 'f'), c.otherUid, c.gid);
    fs.chmodSync(p(d, 'f'), 0o600);
    assert.equal(mode(p(d, 'f')), 0o600);
  } else {
    fails('EPERM', () => fs.chmodSync(d + '/../..', 0o700), 'chmod of a directory root owns');
  }
});
add('chmod changes ctime, not mtime', (d) => {
  write(p(d, 'f'), 'x');
  fs.utimesSync(p(d, 'f'), 1_000_000, 1_000_000);
  fs.chmodSync(p(d, 'f'), 0o600);
  const st = fs.statSync(p(d, 'f'));
  assert.equal(st.mtimeMs, 1_000_000_000);
  assert.ok(st.ctimeMs > 1_000_000_000);
});
add('writing to a setuid file clears setuid unless root writes', (d, c) => {
  write(p(d, 'f'), 'x');
  fs.chmodSync(p(d, 'f'), 0o4755);
  const h = fs.openSync(p(d, 'f'), 'r+');
  fs.writeSync(h, 'y', 0);
  fs.closeSync(h);
  assert.equal(mode(p(d, 'f')), c.root ? 0o4755 : 0o755);
});
add('truncating a setgid-and-group-exec file clears setgid unless root does it', (d, c) => {
  write(p(d, 'f'), 'xyz');
  fs.chmodSync(p(d, 'f'), 0o2775);
  fs.truncateSync(p(d, 'f'), 1);
  assert.equal(mode(p(d, 'f')), c.root ? 0o2775 : 0o775);
});

// ---- chown -----------------------------------------------------------------------------

add('chown of a file to another user: root may, others EPERM', (d, c) => {
  write(p(d, 'f'), 'x');
  denied(c, 'EPERM', () => fs.chownSync(p(d, 'f'), c.otherUid, -1), 'chown');
  assert.equal(fs.statSync(p(d, 'f')).uid, c.root ? c.otherUid : c.uid);
});
add('chgrp to a group the owner is in', (d, c) => {
  write(p(d, 'f'), 'x');
  fs.chownSync(p(d, 'f'), -1, c.extraGid);
  assert.equal(fs.statSync(p(d, 'f')).gid, c.extraGid);
});
add('chgrp to a group the owner is not in: EPERM for others', (d, c) => {
  write(p(d, 'f'), 'x');
  denied(c, 'EPERM', () => fs.chownSync(p(d, 'f'), -1, c.foreignGid), 'chgrp');
  assert.equal(fs.statSync(p(d, 'f')).gid, c.root ? c.foreignGid : c.gid);
});
add('chown to oneself with -1 for the group changes nothing and succeeds', (d, c) => {
  write(p(d, 'f'), 'x');
  fs.chownSync(p(d, 'f'), c.uid, -1);
  assert.equal(fs.statSync(p(d, 'f')).uid, c.uid);
});
add('chown -h changes the symlink, not its target', (d, c) => {
  write(p(d, 't'), 'x');
  fs.symlinkSync('t', p(d, 'l'));
  fs.lchownSync(p(d, 'l'), -1, c.extraGid);
  assert.equal(fs.lstatSync(p(d, 'l')).gid, c.extraGid);
  assert.equal(fs.statSync(p(d, 't')).gid, c.gid);
});
add('chown through a symlink changes the target', (d, c) => {
  write(p(d, 't'), 'x');
  fs.symlinkSync('t', p(d, 'l'));
  fs.chownSync(p(d, 'l'), -1, c.extraGid);
  assert.equal(fs.statSync(p(d, 't')).gid, c.extraGid);
  assert.equal(fs.lstatSync(p(d, 'l')).gid, c.gid);
});
add('chown of a missing file: ENOENT', (d, c) => {
  fails('ENOENT', () => fs.chownSync(p(d, 'missing'), c.uid, c.gid));
});
add('chown clears setuid and setgid of a group-exec file', (d, c) => {
  write(p(d, 'f'), 'x');
  fs.chmodSync(p(d, 'f'), 0o6755);
  fs.chownSync(p(d, 'f'), -1, c.extraGid);
  assert.equal(mode(p(d, 'f')), 0o755);
});
add('chown of a directory', (d, c) => {
  fs.mkdirSync(p(d, 'x'));
  fs.chownSync(p(d, 'x'), -1, c.extraGid);
  assert.equal(fs.statSync(p(d, 'x')).gid, c.extraGid);
});

// ---- link ------------------------------------------------------------------------------

add('link: both names, one inode, nlink 2', (d) => {
  write(p(d, 'a'), 'shared');
  fs.linkSync(p(d, 'a'), p(d, 'b'));
  const a = fs.statSync(p(d, 'a'));
  const b = fs.statSync(p(d, 'b'));
  assert.equal(a.ino, b.ino);
  assert.equal(a.nlink, 2);
  assert.equal(b.nlink, 2);
  assert.equal(text(p(d, 'b')), 'shared');
});
add('link: a write through one name is read through the other', (d) => {
  write(p(d, 'a'), 'old');
  fs.linkSync(p(d, 'a'), p(d, 'b'));
  fs.writeFileSync(p(d, 'a'), 'new contents');
  assert.equal(text(p(d, 'b')), 'new contents');
});
add('link then unlink the first name: the second keeps the data, nlink 1', (d) => {
  write(p(d, 'a'), 'survives');
  fs.linkSync(p(d, 'a'), p(d, 'b'));
  fs.unlinkSync(p(d, 'a'));
  assert.equal(text(p(d, 'b')), 'survives');
  assert.equal(fs.statSync(p(d, 'b')).nlink, 1);
});
add('link onto an existing name: EEXIST', (d) => {
  write(p(d, 'a'), '1');
  write(p(d, 'b'), '2');
  fails('EEXIST', () => fs.linkSync(p(d, 'a'), p(d, 'b')));
  assert.equal(text(p(d, 'b')), '2');
});
add('link of a directory: EPERM', (d) => {
  fs.mkdirSync(p(d, 'x'));
  fails('EPERM', () => fs.linkSync(p(d, 'x'), p(d, 'y')));
});
add('link of a missing file: ENOENT', (d) => {
  fails('ENOENT', () => fs.linkSync(p(d, 'missing'), p(d, 'y')));
});
add('link into another directory', (d) => {
  write(p(d, 'a'), 'x');
  fs.mkdirSync(p(d, 'sub'));
  fs.linkSync(p(d, 'a'), p(d, 'sub', 'a2'));
  assert.equal(fs.statSync(p(d, 'sub', 'a2')).ino, fs.statSync(p(d, 'a')).ino);
});
add('link of a symlink links the symlink itself', (d) => {
  write(p(d, 't'), 'x');
  fs.symlinkSync('t', p(d, 'l'));
  fs.linkSync(p(d, 'l'), p(d, 'l2'));
  assert.ok(fs.lstatSync(p(d, 'l2')).isSymbolicLink());
  assert.equal(fs.readlinkSync(p(d, 'l2')), 't');
});
add('link into a directory without write permission: EACCES for others', (d, c) => {
  write(p(d, 'a'), 'x');
  fs.mkdirSync(p(d, 'ro'), 0o555);
  denied(c, 'EACCES', () => fs.linkSync(p(d, 'a'), p(d, 'ro', 'a')), 'link');
});
add('three links, then unlink two: nlink counts down', (d) => {
  write(p(d, 'a'), 'x');
  fs.linkSync(p(d, 'a'), p(d, 'b'));
  fs.linkSync(p(d, 'a'), p(d, 'c'));
  assert.equal(fs.statSync(p(d, 'c')).nlink, 3);
  fs.unlinkSync(p(d, 'a'));
  fs.unlinkSync(p(d, 'b'));
  assert.equal(fs.statSync(p(d, 'c')).nlink, 1);
});

// ---- symlink and readlink --------------------------------------------------------------

add('symlink and readlink give back the target', (d) => {
  fs.symlinkSync('some/where', p(d, 'l'));
  assert.equal(fs.readlinkSync(p(d, 'l')), 'some/where');
  assert.equal(fs.lstatSync(p(d, 'l')).size, 'some/where'.length);
});
add('a symlink is owned by its creator', (d, c) => {
  fs.symlinkSync('t', p(d, 'l'));
  const st = fs.lstatSync(p(d, 'l'));
  assert.equal(st.uid, c.uid);
  assert.equal(st.gid, c.gid);
});
add('a dangling symlink: lstat finds it, stat gives ENOENT', (d) => {
  fs.symlinkSync('nowhere', p(d, 'l'));
  assert.ok(fs.lstatSync(p(d, 'l')).isSymbolicLink());
  fails('ENOENT', () => fs.statSync(p(d, 'l')));
});
add('symlink onto an existing name: EEXIST', (d) => {
  write(p(d, 'f'), 'x');
  fails('EEXIST', () => fs.symlinkSync('t', p(d, 'f')));
});
add('reading through a symlink reads the target', (d) => {
  write(p(d, 't'), 'through');
  fs.symlinkSync('t', p(d, 'l'));
  assert.equal(text(p(d, 'l')), 'through');
});
add('a symlink to a directory is traversed', (d) => {
  fs.mkdirSync(p(d, 'dir'));
  write(p(d, 'dir', 'f'), 'inside');
  fs.symlinkSync('dir', p(d, 'l'));
  assert.equal(text(p(d, 'l', 'f')), 'inside');
});
add('a symlink loop: ELOOP', (d) => {
  fs.symlinkSync('b', p(d, 'a'));
  fs.symlinkSync('a', p(d, 'b'));
  fails('ELOOP', () => fs.statSync(p(d, 'a')));
});
add('a symlink target of bytes that are not UTF-8 comes back byte for byte', (d) => {
  const target = Buffer.from([0x66, 0xff, 0x80, 0xc3, 0x28]);
  fs.symlinkSync(target, p(d, 'l'));
  assert.deepEqual([...fs.readlinkSync(p(d, 'l'), { encoding: 'buffer' })], [...target]);
});
add('a symlink target of 1000 bytes', (d) => {
  const target = 'x/'.repeat(500);
  fs.symlinkSync(target, p(d, 'l'));
  assert.equal(fs.readlinkSync(p(d, 'l')), target);
});
add('readlink of a regular file: EINVAL', (d) => {
  write(p(d, 'f'), 'x');
  fails('EINVAL', () => fs.readlinkSync(p(d, 'f')));
});
add('readlink of a missing name: ENOENT', (d) => {
  fails('ENOENT', () => fs.readlinkSync(p(d, 'missing')));
});
add('unlink of a symlink removes the link, not the target', (d) => {
  write(p(d, 't'), 'stays');
  fs.symlinkSync('t', p(d, 'l'));
  fs.unlinkSync(p(d, 'l'));
  assert.equal(exists(p(d, 'l')), false);
  assert.equal(text(p(d, 't')), 'stays');
});
add('symlink in a directory without write permission: EACCES for others', (d, c) => {
  fs.mkdirSync(p(d, 'ro'), 0o555);
  denied(c, 'EACCES', () => fs.symlinkSync('t', p(d, 'ro', 'l')), 'symlink');
});
add('a symlink to an absolute path is stored as written, not resolved', (d) => {
  fs.symlinkSync('/etc/hostname', p(d, 'l'));
  assert.equal(fs.readlinkSync(p(d, 'l')), '/etc/hostname');
});

// ---- mkdir -----------------------------------------------------------------------------

add('mkdir: a directory owned by the caller, with nlink 2', (d, c) => {
  fs.mkdirSync(p(d, 'x'));
  const st = fs.statSync(p(d, 'x'));
  assert.ok(st.isDirectory());
  assert.equal(st.uid, c.uid);
  assert.equal(st.nlink, 2);
});
for (const [m, umask] of [[0o755, 0o022], [0o777, 0o022], [0o777, 0], [0o700, 0], [0o1777, 0], [0o2750, 0o027]] as const) {
  add(`mkdir mode ${m.toString(8)} under umask ${umask.toString(8)}`, (d) => {
    process.umask(umask);
    fs.mkdirSync(p(d, 'x'), m);
    // mkdir takes the permission bits and the sticky bit; setgid comes only from the parent.
    assert.equal(mode(p(d, 'x')), m & ~umask & 0o1777);
  });
}
add('mkdir of an existing name: EEXIST', (d) => {
  write(p(d, 'f'), 'x');
  fails('EEXIST', () => fs.mkdirSync(p(d, 'f')));
});
add('mkdir under a missing parent: ENOENT', (d) => {
  fails('ENOENT', () => fs.mkdirSync(p(d, 'no', 'x')));
});
add('mkdir under a file: ENOTDIR', (d) => {
  write(p(d, 'f'), 'x');
  fails('ENOTDIR', () => fs.mkdirSync(p(d, 'f', 'x')));
});
add("mkdir raises the parent's link count", (d) => {
  fs.mkdirSync(p(d, 'x'));
  const before = fs.statSync(p(d, 'x')).nlink;
  fs.mkdirSync(p(d, 'x', 'y'));
  assert.equal(fs.statSync(p(d, 'x')).nlink, before + 1);
});
add('mkdir in a setgid directory: the group and setgid are inherited', (d, c) => {
  fs.mkdirSync(p(d, 'g'));
  fs.chownSync(p(d, 'g'), -1, c.extraGid);
  fs.chmodSync(p(d, 'g'), 0o2775);
  fs.mkdirSync(p(d, 'g', 'sub'), 0o755);
  write(p(d, 'g', 'f'), 'x');
  const sub = fs.statSync(p(d, 'g', 'sub'));
  assert.equal(sub.gid, c.extraGid);
  assert.equal(sub.mode & 0o2000, 0o2000);
  assert.equal(fs.statSync(p(d, 'g', 'f')).gid, c.extraGid);
});
add('mkdir in a directory without write permission: EACCES for others', (d, c) => {
  fs.mkdirSync(p(d, 'ro'), 0o555);
  denied(c, 'EACCES', () => fs.mkdirSync(p(d, 'ro', 'x')), 'mkdir');
});
add('mkdir -p of a deep path', (d) => {
  fs.mkdirSync(p(d, 'a', 'b', 'c', 'd', 'e'), { recursive: true });
  assert.ok(fs.statSync(p(d, 'a', 'b', 'c', 'd', 'e')).isDirectory());
});

// ---- rmdir -----------------------------------------------------------------------------

add('rmdir of an empty directory', (d) => {
  fs.mkdirSync(p(d, 'x'));
  fs.rmdirSync(p(d, 'x'));
  assert.equal(exists(p(d, 'x')), false);
});
add('rmdir of a non-empty directory: ENOTEMPTY', (d) => {
  fs.mkdirSync(p(d, 'x'));
  write(p(d, 'x', 'f'), 'x');
  fails('ENOTEMPTY', () => fs.rmdirSync(p(d, 'x')));
});
add('rmdir of a file: ENOTDIR', (d) => {
  write(p(d, 'f'), 'x');
  fails('ENOTDIR', () => fs.rmdirSync(p(d, 'f')));
});
add('rmdir of a missing name: ENOENT', (d) => {
  fails('ENOENT', () => fs.rmdirSync(p(d, 'missing')));
});
add('rmdir of a symlink to a directory: ENOTDIR', (d) => {
  fs.mkdirSync(p(d, 'x'));
  fs.symlinkSync('x', p(d, 'l'));
  fails('ENOTDIR', () => fs.rmdirSync(p(d, 'l')));
});
add("rmdir lowers the parent's link count", (d) => {
  fs.mkdirSync(p(d, 'x'));
  fs.mkdirSync(p(d, 'x', 'y'));
  const before = fs.statSync(p(d, 'x')).nlink;
  fs.rmdirSync(p(d, 'x', 'y'));
  assert.equal(fs.statSync(p(d, 'x')).nlink, before - 1);
});
add('rm -rf of a tree', (d) => {
  fs.mkdirSync(p(d, 't', 'a', 'b'), { recursive: true });
  write(p(d, 't', 'a', 'f'), 'x');
  fs.symlinkSync('a', p(d, 't', 'l'));
  run('rm', ['-rf', p(d, 't')]);
  assert.equal(exists(p(d, 't')), false);
});

// ---- rename ----------------------------------------------------------------------------

add('rename a file within a directory', (d) => {
  write(p(d, 'a'), 'moved');
  fs.renameSync(p(d, 'a'), p(d, 'b'));
  assert.equal(exists(p(d, 'a')), false);
  assert.equal(text(p(d, 'b')), 'moved');
});
add('rename keeps the inode', (d) => {
  write(p(d, 'a'), 'x');
  const ino = fs.statSync(p(d, 'a')).ino;
  fs.renameSync(p(d, 'a'), p(d, 'b'));
  assert.equal(fs.statSync(p(d, 'b')).ino, ino);
});
add('rename across directories', (d) => {
  fs.mkdirSync(p(d, 'x'));
  fs.mkdirSync(p(d, 'y'));
  write(p(d, 'x', 'f'), 'across');
  fs.renameSync(p(d, 'x', 'f'), p(d, 'y', 'g'));
  assert.equal(text(p(d, 'y', 'g')), 'across');
});
add('rename over an existing file replaces it', (d) => {
  write(p(d, 'a'), 'new');
  write(p(d, 'b'), 'old old old');
  fs.renameSync(p(d, 'a'), p(d, 'b'));
  assert.equal(text(p(d, 'b')), 'new');
  assert.equal(exists(p(d, 'a')), false);
});
add('rename of a file over a directory: EISDIR', (d) => {
  write(p(d, 'f'), 'x');
  fs.mkdirSync(p(d, 'x'));
  fails('EISDIR', () => fs.renameSync(p(d, 'f'), p(d, 'x')));
});
add('rename of a directory over a file: ENOTDIR', (d) => {
  write(p(d, 'f'), 'x');
  fs.mkdirSync(p(d, 'x'));
  fails('ENOTDIR', () => fs.renameSync(p(d, 'x'), p(d, 'f')));
});
add('rename of a directory over an empty directory', (d) => {
  fs.mkdirSync(p(d, 'x'));
  write(p(d, 'x', 'f'), 'x');
  fs.mkdirSync(p(d, 'y'));
  fs.renameSync(p(d, 'x'), p(d, 'y'));
  assert.equal(text(p(d, 'y', 'f')), 'x');
});
add('rename of a directory over a non-empty one: ENOTEMPTY', (d) => {
  fs.mkdirSync(p(d, 'x'));
  fs.mkdirSync(p(d, 'y'));
  write(p(d, 'y', 'f'), 'x');
  fails('ENOTEMPTY', () => fs.renameSync(p(d, 'x'), p(d, 'y')));
});
add('rename of a directory into itself: EINVAL', (d) => {
  fs.mkdirSync(p(d, 'x'));
  fails('EINVAL', () => fs.renameSync(p(d, 'x'), p(d, 'x', 'y')));
});
add('rename of a missing name: ENOENT', (d) => {
  fails('ENOENT', () => fs.renameSync(p(d, 'missing'), p(d, 'y')));
});
add('rename onto itself changes nothing', (d) => {
  write(p(d, 'a'), 'same');
  fs.renameSync(p(d, 'a'), p(d, 'a'));
  assert.equal(text(p(d, 'a')), 'same');
});
add('rename of one hard link onto another of the same file does nothing', (d) => {
  write(p(d, 'a'), 'x');
  fs.linkSync(p(d, 'a'), p(d, 'b'));
  fs.renameSync(p(d, 'a'), p(d, 'b'));
  assert.equal(exists(p(d, 'a')), true);
  assert.equal(exists(p(d, 'b')), true);
});
add('rename of a directory moves its subtree', (d) => {
  fs.mkdirSync(p(d, 'x', 'deep'), { recursive: true });
  write(p(d, 'x', 'deep', 'f'), 'subtree');
  fs.renameSync(p(d, 'x'), p(d, 'z'));
  assert.equal(text(p(d, 'z', 'deep', 'f')), 'subtree');
  assert.equal(exists(p(d, 'x')), false);
});
add('rename of a symlink moves the link', (d) => {
  write(p(d, 't'), 'x');
  fs.symlinkSync('t', p(d, 'l'));
  fs.renameSync(p(d, 'l'), p(d, 'm'));
  assert.equal(fs.readlinkSync(p(d, 'm')), 't');
});
add('a descriptor open across a rename keeps reading and writing the file', (d) => {
  write(p(d, 'a'), 'before');
  const h = fs.openSync(p(d, 'a'), 'r+');
  fs.renameSync(p(d, 'a'), p(d, 'b'));
  fs.writeSync(h, 'AFTER!', 0);
  fs.closeSync(h);
  assert.equal(text(p(d, 'b')), 'AFTER!');
});
add('rename into a directory without write permission: EACCES for others', (d, c) => {
  write(p(d, 'a'), 'x');
  fs.mkdirSync(p(d, 'ro'), 0o555);
  denied(c, 'EACCES', () => fs.renameSync(p(d, 'a'), p(d, 'ro', 'a')), 'rename');
});
add('mv of a file with data written just before', (d) => {
  fs.writeFileSync(p(d, 'a'), 'z'.repeat(100_000));
  run('mv', [p(d, 'a'), p(d, 'b')]);
  assert.equal(size(p(d, 'b')), 100_000);
});

// ---- unlink ----------------------------------------------------------------------------

add('unlink removes the name', (d) => {
  write(p(d, 'f'), 'x');
  fs.unlinkSync(p(d, 'f'));
  assert.equal(exists(p(d, 'f')), false);
});
add('unlink of a missing name: ENOENT', (d) => {
  fails('ENOENT', () => fs.unlinkSync(p(d, 'missing')));
});
add('unlink of a directory: EISDIR', (d) => {
  fs.mkdirSync(p(d, 'x'));
  fails('EISDIR', () => fs.unlinkSync(p(d, 'x')));
});
add('unlink in a directory without write permission: EACCES for others', (d, c) => {
  fs.mkdirSync(p(d, 'x'));
  write(p(d, 'x', 'f'), 'x');
  fs.chmodSync(p(d, 'x'), 0o555);
  denied(c, 'EACCES', () => fs.unlinkSync(p(d, 'x', 'f')), 'unlink');
  fs.chmodSync(p(d, 'x'), 0o755);
});
add('unlink of a file just written and not yet closed by anyone else', (d) => {
  const h = fs.openSync(p(d, 'f'), 'w');
  fs.writeSync(h, 'y'.repeat(50_000));
  fs.closeSync(h);
  fs.unlinkSync(p(d, 'f'));
  assert.equal(exists(p(d, 'f')), false);
});
add('a name removed and made again is a new, empty file', (d) => {
  write(p(d, 'f'), 'q'.repeat(70_000));
  fs.unlinkSync(p(d, 'f'));
  write(p(d, 'f'), 'tiny');
  assert.equal(text(p(d, 'f')), 'tiny');
  assert.equal(size(p(d, 'f')), 4);
});
add('delete then create: the new file never shows the old one\'s data', (d) => {
  write(p(d, 'a'), 'x'.repeat(300_000));
  fs.unlinkSync(p(d, 'a'));
  write(p(d, 'b'), 'zzzzzzzzzz');
  assert.equal(size(p(d, 'b')), 10);
  assert.equal(text(p(d, 'b')), 'zzzzzzzzzz');
});

add('an unlinked open file stays readable, writable and stat-able until the last close', (d) => {
  const h = fs.openSync(p(d, 'f'), 'w+', 0o644);
  fs.writeSync(h, 'before', 0);
  fs.unlinkSync(p(d, 'f'));
  assert.equal(exists(p(d, 'f')), false);
  const st = fs.fstatSync(h);
  assert.equal(st.size, 6);
  assert.equal(st.nlink, 0);
  const buf = Buffer.alloc(16);
  assert.equal(fs.readSync(h, buf, 0, 16, 0), 6);
  assert.equal(buf.subarray(0, 6).toString(), 'before');
  fs.writeSync(h, ' and after', 6);
  fs.fsyncSync(h);
  assert.equal(fs.fstatSync(h).size, 16);
  assert.equal(fs.readSync(h, buf, 0, 16, 0), 16);
  assert.equal(buf.toString(), 'before and after');
  fs.ftruncateSync(h, 3);
  assert.equal(fs.fstatSync(h).size, 3);
  fs.fchmodSync(h, 0o600);
  assert.equal(fs.fstatSync(h).mode & 0o777, 0o600);
  fs.futimesSync(h, 1_000_000, 2_000_000);
  assert.equal(fs.fstatSync(h).mtimeMs, 2_000_000_000);
  fs.closeSync(h);
  assert.deepEqual(fs.readdirSync(d), []);
});
add('an open file removed by a rename over it keeps its contents for its opener', (d) => {
  write(p(d, 'f'), 'the old one');
  write(p(d, 'g'), 'the new one, longer');
  const h = fs.openSync(p(d, 'f'), 'r');
  fs.renameSync(p(d, 'g'), p(d, 'f'));
  const buf = Buffer.alloc(64);
  const n = fs.readSync(h, buf, 0, 64, 0);
  assert.equal(buf.subarray(0, n).toString(), 'the old one');
  assert.equal(fs.fstatSync(h).size, 11);
  fs.closeSync(h);
  assert.equal(text(p(d, 'f')), 'the new one, longer');
});
add('an unlinked file open twice: both handles see each other\'s writes; the last close ends it', (d) => {
  const a = fs.openSync(p(d, 'f'), 'w+', 0o644);
  const b = fs.openSync(p(d, 'f'), 'r+');
  fs.unlinkSync(p(d, 'f'));
  fs.writeSync(a, 'from a', 0);
  fs.closeSync(a);
  const buf = Buffer.alloc(6);
  assert.equal(fs.readSync(b, buf, 0, 6, 0), 6);
  assert.equal(buf.toString(), 'from a');
  assert.equal(fs.fstatSync(b).size, 6);
  fs.closeSync(b);
});

// ---- utimensat -------------------------------------------------------------------------

add('utimes sets atime and mtime to the second', (d) => {
  write(p(d, 'f'), 'x');
  fs.utimesSync(p(d, 'f'), 1_500_000_000, 1_600_000_000);
  const st = fs.statSync(p(d, 'f'));
  assert.equal(st.atimeMs, 1_500_000_000_000);
  assert.equal(st.mtimeMs, 1_600_000_000_000);
});
add('utimes to the epoch', (d) => {
  write(p(d, 'f'), 'x');
  fs.utimesSync(p(d, 'f'), 0, 0);
  assert.equal(fs.statSync(p(d, 'f')).mtimeMs, 0);
});
add('utimes far in the future (past 2038)', (d) => {
  write(p(d, 'f'), 'x');
  fs.utimesSync(p(d, 'f'), 2 ** 33, 2 ** 33);
  assert.equal(fs.statSync(p(d, 'f')).mtimeMs, 2 ** 33 * 1000);
});
add('times are kept to the nanosecond', (d) => {
  write(p(d, 'f'), 'x');
  run('touch', ['-m', '-d', '2020-01-02 03:04:05.123456789 UTC', p(d, 'f')]);
  assert.equal(fs.statSync(p(d, 'f'), { bigint: true }).mtimeNs % 1_000_000_000n, 123456789n);
});
add('lutimes changes the symlink, not its target', (d) => {
  write(p(d, 't'), 'x');
  fs.utimesSync(p(d, 't'), 1_000_000, 1_000_000);
  fs.symlinkSync('t', p(d, 'l'));
  fs.lutimesSync(p(d, 'l'), 2_000_000, 2_000_000);
  assert.equal(fs.lstatSync(p(d, 'l')).mtimeMs, 2_000_000_000);
  assert.equal(fs.statSync(p(d, 't')).mtimeMs, 1_000_000_000);
});
add('touch -h of a symlink leaves the target alone', (d) => {
  write(p(d, 't'), 'x');
  fs.utimesSync(p(d, 't'), 1_000_000, 1_000_000);
  fs.symlinkSync('t', p(d, 'l'));
  run('touch', ['-h', p(d, 'l')]);
  assert.equal(fs.statSync(p(d, 't')).mtimeMs, 1_000_000_000);
});
add('futimes on a descriptor', (d) => {
  write(p(d, 'f'), 'x');
  const h = fs.openSync(p(d, 'f'), 'r');
  fs.futimesSync(h, 1_234_567, 7_654_321);
  fs.closeSync(h);
  assert.equal(fs.statSync(p(d, 'f')).mtimeMs, 7_654_321_000);
});
add('touch (times to now) of a file one may write', (d) => {
  write(p(d, 'f'), 'x');
  fs.utimesSync(p(d, 'f'), 1_000_000, 1_000_000);
  run('touch', [p(d, 'f')]);
  assert.ok(fs.statSync(p(d, 'f')).mtimeMs > Date.now() - 60_000);
});
add("explicit times on another's file: EPERM for others", (d, c) => {
  if (c.root) {
    write(p(d, 'f'), 'x');
    fs.chownSync(p(d, 'f'), c.otherUid, -1);
    fs.utimesSync(p(d, 'f'), 5, 5);
    assert.equal(fs.statSync(p(d, 'f')).mtimeMs, 5000);
  } else {
    fails('EPERM', () => fs.utimesSync(d + '/../..', 5, 5), 'utimes of a directory root owns');
  }
});
add('utimes of a missing file: ENOENT', (d) => {
  fails('ENOENT', () => fs.utimesSync(p(d, 'missing'), 1, 1));
});
add('a write moves mtime', (d) => {
  write(p(d, 'f'), 'x');
  fs.utimesSync(p(d, 'f'), 1_000_000, 1_000_000);
  fs.appendFileSync(p(d, 'f'), 'more');
  assert.ok(fs.statSync(p(d, 'f')).mtimeMs > 1_000_000_000);
});

// ---- mknod (FIFO) ----------------------------------------------------------------------

add('mkfifo makes a FIFO owned by the caller', (d, c) => {
  run('mkfifo', ['-m', '0640', p(d, 'p')]);
  const st = fs.lstatSync(p(d, 'p'));
  assert.ok(st.isFIFO());
  assert.equal(st.mode & 0o7777, 0o640);
  assert.equal(st.uid, c.uid);
});
add('mkfifo of an existing name: EEXIST', (d) => {
  write(p(d, 'f'), 'x');
  try {
    run('mkfifo', [p(d, 'f')]);
    assert.fail('mkfifo over a file succeeded');
  } catch (e) {
    assert.match(String((e as { stderr?: Buffer }).stderr), /File exists/);
  }
});
add('a FIFO carries bytes from writer to reader', (d) => {
  run('mkfifo', [p(d, 'p')]);
  const h = fs.openSync(p(d, 'p'), constants.O_RDWR | constants.O_NONBLOCK);
  fs.writeSync(h, 'through the pipe');
  const buf = Buffer.alloc(64);
  const n = fs.readSync(h, buf, 0, 64, null);
  fs.closeSync(h);
  assert.equal(buf.subarray(0, n).toString(), 'through the pipe');
});
add('unlink of a FIFO', (d) => {
  run('mkfifo', [p(d, 'p')]);
  fs.unlinkSync(p(d, 'p'));
  assert.equal(exists(p(d, 'p')), false);
});
add('rename of a FIFO', (d) => {
  run('mkfifo', [p(d, 'p')]);
  fs.renameSync(p(d, 'p'), p(d, 'q'));
  assert.ok(fs.lstatSync(p(d, 'q')).isFIFO());
});
add('mknod of a character device: EPERM for others', (d, c) => {
  const make = (): void => run('mknod', [p(d, 'null'), 'c', '1', '3']);
  if (c.root) {
    make();
    assert.ok(fs.lstatSync(p(d, 'null')).isCharacterDevice());
    assert.equal(fs.lstatSync(p(d, 'null')).rdev, (1 << 8) | 3);
  } else {
    assert.throws(make);
    assert.equal(exists(p(d, 'null')), false);
  }
});

// ---- names -----------------------------------------------------------------------------

for (const [what, op] of [
  ['create', (f: string) => fs.writeFileSync(f, 'x')],
  ['mkdir', (f: string) => fs.mkdirSync(f)],
  ['symlink', (f: string) => fs.symlinkSync('t', f)],
  ['mkfifo', (f: string) => run('mkfifo', [f])],
] as const) {
  add(`${what} of a 255-byte name works`, (d) => {
    op(p(d, long(255)));
    assert.ok(exists(p(d, long(255))));
  });
  add(`${what} of a 256-byte name: ENAMETOOLONG`, (d) => {
    if (what === 'mkfifo') assert.throws(() => op(p(d, long(256))));
    else fails('ENAMETOOLONG', () => op(p(d, long(256))));
  });
}
add('rename to a 256-byte name: ENAMETOOLONG', (d) => {
  write(p(d, 'a'), 'x');
  fails('ENAMETOOLONG', () => fs.renameSync(p(d, 'a'), p(d, long(256))));
});
add('link to a 256-byte name: ENAMETOOLONG', (d) => {
  write(p(d, 'a'), 'x');
  fails('ENAMETOOLONG', () => fs.linkSync(p(d, 'a'), p(d, long(256))));
});
add('stat of a 256-byte name: ENAMETOOLONG', (d) => {
  fails('ENAMETOOLONG', () => fs.statSync(p(d, long(256))));
});

/** Directories under `d` making a path of exactly `total` bytes (absolute, as the caller gives it) to a file. */
function pathOfLength(d: string, total: number): { dirs: string; file: string } {
  let dirs = d;
  for (let rest = total - dirs.length - 1; rest > 255; rest = total - dirs.length - 1) dirs += '/' + 'p'.repeat(Math.min(200, rest - 2));
  const file = dirs + '/' + 'f'.repeat(total - dirs.length - 1);
  return { dirs, file };
}
add('a path of 4,000 bytes: create, write, read, stat, rename, unlink', (d) => {
  const { dirs, file } = pathOfLength(d, 4000);
  assert.equal(file.length, 4000);
  fs.mkdirSync(dirs, { recursive: true });
  write(file, 'deep');
  assert.equal(text(file), 'deep');
  assert.equal(size(file), 4);
  fs.renameSync(file, file.slice(0, -1) + 'g');
  assert.equal(text(file.slice(0, -1) + 'g'), 'deep');
  fs.unlinkSync(file.slice(0, -1) + 'g');
  assert.deepEqual(fs.readdirSync(dirs), []);
});
add('a path of 4,096 bytes: ENAMETOOLONG', (d) => {
  const { dirs, file } = pathOfLength(d, 4096);
  fs.mkdirSync(dirs, { recursive: true });
  fails('ENAMETOOLONG', () => write(file, 'x'));
});

/** A path made of `d` and a name given as bytes. */
const bytesPath = (d: string, name: number[]): Buffer => Buffer.concat([Buffer.from(d + '/'), Buffer.from(name)]);
for (let hi = 0x80; hi <= 0xff; hi += 0x10) {
  const bytes = [0x61, hi, hi + 0x0f, 0x7a];
  add(`a name with bytes 0x${hi.toString(16)}..0x${(hi + 0x0f).toString(16)} round-trips`, (d) => {
    fs.writeFileSync(bytesPath(d, bytes), 'bytes');
    const listed = fs.readdirSync(d, { encoding: 'buffer' });
    assert.equal(listed.length, 1);
    assert.deepEqual([...listed[0]!], bytes);
    assert.equal(fs.readFileSync(bytesPath(d, bytes), 'utf8'), 'bytes');
    fs.unlinkSync(bytesPath(d, bytes));
  });
}
add('two names that differ only in bytes past 0x7f are two files', (d) => {
  fs.writeFileSync(bytesPath(d, [0x66, 0xff]), 'one');
  fs.writeFileSync(bytesPath(d, [0x66, 0xfe]), 'two');
  fs.writeFileSync(Buffer.from(d + '/f\uFFFD'), 'three');
  assert.equal(fs.readdirSync(d).length, 3);
  assert.equal(fs.readFileSync(bytesPath(d, [0x66, 0xff]), 'utf8'), 'one');
  assert.equal(fs.readFileSync(bytesPath(d, [0x66, 0xfe]), 'utf8'), 'two');
});
add('O_EXCL on a name that differs from an existing one only past 0x7f creates it', (d) => {
  fs.writeFileSync(bytesPath(d, [0x66, 0xff]), 'one');
  fs.closeSync(fs.openSync(bytesPath(d, [0x66, 0xfe]), constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o644));
});
add('a tree of such names: made, listed, removed by rm -rf', (d) => {
  fs.mkdirSync(p(d, 't'));
  const dir = bytesPath(p(d, 't'), [0xc0, 0xc1, 0xf5]);
  fs.mkdirSync(dir);
  fs.writeFileSync(Buffer.concat([dir, Buffer.from('/'), Buffer.from([0xff])]), 'in');
  assert.deepEqual([...fs.readdirSync(dir, { encoding: 'buffer' })[0]!], [0xff]);
  run('rm', ['-rf', p(d, 't')]);
  assert.equal(exists(p(d, 't')), false);
});
add('rename to a name with bytes past 0x7f', (d) => {
  write(p(d, 'a'), 'x');
  fs.renameSync(p(d, 'a'), bytesPath(d, [0xe9, 0x80]));
  assert.deepEqual([...fs.readdirSync(d, { encoding: 'buffer' })[0]!], [0xe9, 0x80]);
});
for (const name of ['with space', 'new\nline', 'back\\slash', '-dash', 'tab\there', '\u00e9t\u00e9', '.hidden', '..dots', '#%&*?']) {
  add(`a name ${JSON.stringify(name)} works`, (d) => {
    fs.writeFileSync(p(d, name), 'ok');
    assert.deepEqual(fs.readdirSync(d), [name]);
    assert.equal(text(p(d, name)), 'ok');
  });
}
add('a listing of 300 names is complete', (d) => {
  for (let i = 0; i < 300; i++) fs.writeFileSync(p(d, `file-${i}`), '');
  const listed = fs.readdirSync(d);
  assert.equal(listed.length, 300);
  assert.equal(new Set(listed).size, 300);
});
add('a listing shows kinds: file, directory, symlink, FIFO', (d) => {
  write(p(d, 'f'), '');
  fs.mkdirSync(p(d, 'x'));
  fs.symlinkSync('f', p(d, 'l'));
  run('mkfifo', [p(d, 'p')]);
  const kinds = Object.fromEntries(
    fs.readdirSync(d, { withFileTypes: true }).map((e) => [e.name, e.isFile() ? 'f' : e.isDirectory() ? 'd' : e.isSymbolicLink() ? 'l' : e.isFIFO() ? 'p' : '?']),
  );
  assert.deepEqual(kinds, { f: 'f', x: 'd', l: 'l', p: 'p' });
});
add('ls -la lists the names with their owners', (d, c) => {
  write(p(d, 'f'), 'abc');
  const out = execFileSync('ls', ['-lan', d], { encoding: 'utf8' });
  assert.match(out, new RegExp(`^-rw-r--r-- +1 +${c.uid} +${c.gid} +3 .* f$`, 'm'));
});
