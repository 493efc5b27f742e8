/**
 * The remote of the M rows: Debian's sshd on 127.0.0.1 serving SFTP (internal-sftp) of a
 * local directory, started by the bench with throwaway keys made for this run, behind the
 * delaying proxy. Every client (sshfs, rclone, and cmkit over an sshfs backing) reaches it
 * through the same proxy, so all of them pay the same round trip.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { startDelayProxy, type DelayProxy } from './delay-proxy.js';

export const SSHD = '/usr/sbin/sshd';

export interface SftpRemote {
  /** The proxy's port: where clients connect. */
  readonly port: number;
  readonly user: string;
  /** The private key clients log in with. */
  readonly keyFile: string;
  stop(): Promise<void>;
}

/** Why the remote cannot start here, or undefined. */
export function sftpUnavailable(): string | undefined {
  if (!existsSync(SSHD)) return `${SSHD} not installed (Debian package openssh-server)`;
  try {
    execFileSync('ssh-keygen', ['-?'], { stdio: 'ignore' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'ssh-keygen not installed (Debian package openssh-client)';
  }
  return undefined;
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function waitForListener(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`sshd exited (${child.exitCode}) before it listened`);
    const up = await new Promise<boolean>((resolve) => {
      const c = net.connect({ host: '127.0.0.1', port }, () => {
        c.destroy();
        resolve(true);
      });
      c.on('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('sshd did not listen within 5 s');
}

/** Starts sshd and the proxy (`delayMs` each way) in front of it. */
export async function startSftpRemote(delayMs: number): Promise<SftpRemote> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cmkit-sftp-'));
  const key = (name: string): void => {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'cmkit-bench', '-f', path.join(dir, name)]);
  };
  key('host');
  key('user');
  writeFileSync(path.join(dir, 'authorized_keys'), readFileSync(path.join(dir, 'user.pub')), { mode: 0o600 });
  const sshdPort = await freePort();
  const config = [
    `Port ${sshdPort}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${path.join(dir, 'host')}`,
    `PidFile ${path.join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password',
    'UsePAM no',
    'StrictModes no',
    'Subsystem sftp internal-sftp',
  ];
  writeFileSync(path.join(dir, 'sshd_config'), config.join('\n') + '\n');
  mkdirSync('/run/sshd', { recursive: true }); // the privilege separation directory sshd insists on
  const sshd = spawn(SSHD, ['-D', '-e', '-f', path.join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  sshd.stderr!.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-4000);
  });
  let proxy: DelayProxy | undefined;
  try {
    await waitForListener(sshdPort, sshd);
    proxy = await startDelayProxy(sshdPort, delayMs);
  } catch (e) {
    sshd.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${(e as Error).message}; sshd said: ${log}`);
  }
  const started = proxy;
  return {
    port: started.port,
    user: os.userInfo().username,
    keyFile: path.join(dir, 'user'),
    stop: async () => {
      await started.stop();
      if (sshd.exitCode === null) {
        const exited = new Promise<void>((resolve) => sshd.once('exit', () => resolve()));
        sshd.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
