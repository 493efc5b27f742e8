/** `cmkit mount` as its own process, as users run it, for the mount's bench rows. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

export const CLI = path.join(__dirname, '..', 'src', 'mount', 'cli.js');

/** Resolves once the mount serves. */
export async function mountCli(backing: string, mountpoint: string, extra: string[]): Promise<ChildProcess> {
  const cli = spawn(process.execPath, [CLI, 'mount', backing, mountpoint, ...extra], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    cli.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('cmkit: mounted')) resolve();
    });
    cli.on('exit', () => reject(new Error(`cmkit mount exited: ${out}`)));
  });
  return cli;
}

export async function unmountCli(cli: ChildProcess, mountpoint: string): Promise<void> {
  const exited = new Promise<void>((resolve) => cli.once('exit', () => resolve()));
  cli.kill('SIGTERM');
  await exited;
  if (readFileSync('/proc/self/mounts', 'utf8').includes(` ${mountpoint} `)) execFileSync('umount', ['-l', mountpoint]);
}

