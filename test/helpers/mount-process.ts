/**
 * `cmkit mount` as its own process, for tests (the mount must keep serving while the test
 * process blocks in a system call on it), and the unprivileged user tests run as.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const CLI = path.join(__dirname, '..', '..', 'src', 'mount', 'cli.js');

export interface Mounted {
  readonly backing: string;
  readonly mountpoint: string;
  readonly cli: ChildProcess;
  readonly output: () => string;
  /** The CLI's exit code, once it exits. */
  readonly exited: Promise<number | null>;
  /** Sends `signal` and resolves to the exit code once the CLI has unmounted and exited. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Mounts base/backing at base/mnt; `runAs` (asUser's argv prefix) runs the CLI as that user. */
export async function mount(base: string, extra: string[] = [], runAs: string[] = []): Promise<Mounted> {
  const backing = path.join(base, 'backing');
  const mountpoint = path.join(base, 'mnt');
  mkdirSync(backing, { recursive: true });
  mkdirSync(mountpoint, { recursive: true });
  const argv = [...runAs, process.execPath, CLI, 'mount', backing, mountpoint, ...extra];
  const cli = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  cli.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  cli.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => cli.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const check = setInterval(() => {
      if (out.includes('cmkit: mounted')) {
        clearInterval(check);
        resolve();
      } else if (cli.exitCode !== null) {
        clearInterval(check);
        reject(new Error(`cmkit mount exited: ${out}`));
      }
    }, 10);
  });
  return {
    backing,
    mountpoint,
    cli,
    output: () => out,
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (cli.exitCode === null) cli.kill(signal);
      return exited;
    },
  };
}

export function mounted(mountpoint: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[1] === mountpoint);
}

export async function withMount(name: string, extra: string[], body: (m: Mounted) => Promise<void>): Promise<void> {
  const base = mkdtempSync(path.join(os.tmpdir(), `cmkit-${name}-`));
  let m: Mounted | undefined;
  try {
    m = await mount(base, extra);
    await body(m);
  } finally {
    if (m !== undefined) {
      await m.stop();
      if (mounted(m.mountpoint)) execFileSync('umount', ['-l', m.mountpoint]);
    }
    rmSync(base, { recursive: true, force: true });
  }
}

/** The unprivileged user the tests run as: its ids, and a second group it is in. */
export interface TestUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly extraGid: number;
}

const USER = 'cmkit-posix';
const EXTRA_GROUP = 'cmkit-posix-x';

/** Makes (once) the test user, or says why it cannot. */
export function testUser(): TestUser | string {
  if (process.getuid?.() !== 0) return 'not root: cannot create the unprivileged test user';
  try {
    const has = (cmd: string, arg: string): boolean => {
      try {
        execFileSync('getent', [cmd, arg], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    };
    if (!has('group', EXTRA_GROUP)) execFileSync('groupadd', [EXTRA_GROUP]);
    if (!has('passwd', USER)) execFileSync('useradd', ['-M', '-s', '/usr/sbin/nologin', '-G', EXTRA_GROUP, USER]);
    const id = (flag: string): number => Number(execFileSync('id', [flag, USER], { encoding: 'utf8' }).trim());
    const extraGid = Number(execFileSync('getent', ['group', EXTRA_GROUP], { encoding: 'utf8' }).split(':')[2]);
    return { name: USER, uid: id('-u'), gid: id('-g'), extraGid };
  } catch (e) {
    return `cannot create the test user: ${(e as Error).message}`;
  }
}

/** argv prefix running a command as `u`, with its supplementary groups. */
export function asUser(u: TestUser): string[] {
  return ['setpriv', `--reuid=${u.uid}`, `--regid=${u.gid}`, '--init-groups'];
}

/**
 * Runs `body` on a mount whose backing directory is a fresh tmpfs of `size` (`16m`): a
 * disk an unlucky operator can fill or remount. Skips `t` where no tmpfs can be mounted.
 * `extra(base)` gives the CLI's options, which may name paths under the test's base.
 */
export async function withTmpfsMount(
  t: { skip: (reason: string) => void },
  name: string,
  size: string,
  extra: (base: string) => string[],
  body: (m: Mounted, base: string) => Promise<void>,
): Promise<void> {
  const base = mkdtempSync(path.join(os.tmpdir(), `cmkit-${name}-`));
  const backing = path.join(base, 'backing');
  mkdirSync(backing);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', backing], { stdio: 'pipe' });
  } catch {
    t.skip('cannot mount a tmpfs here');
    rmSync(base, { recursive: true, force: true });
    return;
  }
  let m: Mounted | undefined;
  try {
    m = await mount(base, extra(base));
    await body(m, base);
  } finally {
    if (m !== undefined) {
      // A test that failed half-way may leave the mount retrying stores for good.
      const cli = m.cli;
      const kill = setTimeout(() => cli.kill('SIGKILL'), 15_000);
      await m.stop();
      clearTimeout(kill);
      if (mounted(m.mountpoint)) execFileSync('umount', ['-l', m.mountpoint]);
    }
    execFileSync('umount', ['-l', backing]);
    rmSync(base, { recursive: true, force: true });
  }
}
