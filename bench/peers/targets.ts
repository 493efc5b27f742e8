/**
 * What the M rows run each workload on, all over the same SFTP remote (./sftp-remote.ts):
 *   - floor: the remote's directory itself, on local disk: nothing over SFTP is faster;
 *   - sshfs: what most users mount a remote with (sshfs 3, with `kernel_cache`, its best
 *     setting for data read again);
 *   - rclone: `rclone mount --vfs-cache-mode full`, the caching peer (a fresh cache
 *     directory each mount, so a new mount starts cold);
 *   - cmkit: `cmkit mount` whose backing directory is an sshfs mount of the same remote
 *     with sshfs's defaults, as a user would make it: no `kernel_cache`, so every byte
 *     cmkit serves warm is its own cache's (sshfs keeps no data); sshfs's directory cache
 *     stays on, as it is for the sshfs column (with it off, each of cmkit's checks of a
 *     file is one more round trip: M2 cold 159 against 246 reads/s, --quick).
 * A target mounts fresh for each row, so its first pass is cold.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { mountCli, unmountCli } from '../mount-cli.js';
import type { SftpRemote } from './sftp-remote.js';

export type TargetName = 'floor' | 'sshfs' | 'rclone' | 'cmkit';

export interface Mounted {
  /** Where the workload runs: the remote directory's view on this target. */
  readonly dir: string;
  unmount(): Promise<void>;
}

export interface Target {
  readonly name: TargetName;
  mount(): Promise<Mounted>;
}

function has(command: string): boolean {
  return spawnSync(command, ['--version'], { stdio: 'ignore' }).error === undefined;
}

/** Why `name` cannot run here, or undefined. */
export function targetUnavailable(name: TargetName): string | undefined {
  if (name === 'rclone' && !has('rclone')) return 'rclone not installed (Debian package rclone)';
  if ((name === 'sshfs' || name === 'cmkit') && !has('sshfs')) return 'sshfs not installed (Debian package sshfs)';
  return undefined;
}

const mounted = (mnt: string): boolean => readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === mnt);

async function waitMounted(mnt: string, child: ChildProcess, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (mounted(mnt)) return;
    if (child.exitCode !== null) throw new Error(`${what} exited (${child.exitCode}) before it mounted`);
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${what} did not mount within 10 s`);
}

/** Unmounts a FUSE mount of a peer process and waits for the process to end. */
async function fuseUnmount(mnt: string, child: ChildProcess): Promise<void> {
  const exited = new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
  if (mounted(mnt)) execFileSync('fusermount3', ['-u', '-z', mnt]);
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

function sshfsMount(remote: SftpRemote, remoteDir: string, mnt: string, options: string[]): Promise<Mounted> {
  const o = [`IdentityFile=${remote.keyFile}`, 'StrictHostKeyChecking=no', 'UserKnownHostsFile=/dev/null', 'BatchMode=yes', 'LogLevel=ERROR', ...options];
  // Its stderr is dropped: ssh says 'Connection closed' at every unmount.
  const child = spawn('sshfs', ['-f', `${remote.user}@127.0.0.1:${remoteDir}`, mnt, '-p', String(remote.port), '-o', o.join(',')], { stdio: 'ignore' });
  return waitMounted(mnt, child, 'sshfs').then(() => ({ dir: mnt, unmount: () => fuseUnmount(mnt, child) }));
}

/** The targets of one row; `base` is a scratch directory for mountpoints and caches. */
export function targets(remote: SftpRemote, remoteDir: string, base: string, cmkitArgs: string[]): Target[] {
  const point = (name: string): string => {
    const p = path.join(base, name);
    mkdirSync(p, { recursive: true });
    return p;
  };
  return [
    { name: 'floor', mount: async () => ({ dir: remoteDir, unmount: async () => {} }) },
    { name: 'sshfs', mount: () => sshfsMount(remote, remoteDir, point('sshfs'), ['kernel_cache']) },
    {
      name: 'rclone',
      mount: async () => {
        const mnt = point('rclone');
        const cache = mkdtempSync(path.join(base, 'rclone-cache-'));
        const config = path.join(cache, 'rclone.conf');
        writeFileSync(config, '');
        const child = spawn('rclone', [
          'mount', `:sftp:${remoteDir}`, mnt, '--config', config, '--cache-dir', cache, '--vfs-cache-mode', 'full',
          '--sftp-host', '127.0.0.1', '--sftp-port', String(remote.port), '--sftp-user', remote.user,
          '--sftp-key-file', remote.keyFile, '--sftp-disable-hashcheck', '--log-level', 'ERROR',
        ], { stdio: ['ignore', 'ignore', 'inherit'] });
        await waitMounted(mnt, child, 'rclone mount');
        return {
          dir: mnt,
          unmount: async () => {
            await fuseUnmount(mnt, child);
            rmSync(cache, { recursive: true, force: true });
          },
        };
      },
    },
    {
      name: 'cmkit',
      mount: async () => {
        const backing = await sshfsMount(remote, remoteDir, point('cmkit-backing'), []);
        const mnt = point('cmkit');
        let cli: ChildProcess;
        try {
          cli = await mountCli(backing.dir, mnt, cmkitArgs);
        } catch (e) {
          await backing.unmount();
          throw e;
        }
        return {
          dir: mnt,
          unmount: async () => {
            await unmountCli(cli, mnt);
            await backing.unmount();
          },
        };
      },
    },
  ];
}
