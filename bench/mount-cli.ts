/** `cmkit mount` as its own process, as users run it, for the mount's bench rows. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, openSync, readFileSync, readSync } from 'node:fs';
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

const MiB = 1024 * 1024;
/**
 * Reads the whole file in `chunk`-sized read(2)s (1 MiB, as cp or a sequential reader
 * does); bytes/s. `direct`: O_DIRECT, so the kernel's page cache serves nothing and every
 * byte comes from the mount (the kernel then asks in requests of the read's size, up to
 * 1 MiB).
 */
export function readRate(file: string, size: number, direct = false, chunk = MiB): number {
  const buf = Buffer.allocUnsafe(chunk);
  const fd = openSync(file, constants.O_RDONLY | (direct ? constants.O_DIRECT : 0));
  try {
    const t0 = performance.now();
    let total = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      total += n;
    }
    const seconds = (performance.now() - t0) / 1000;
    if (total !== size) throw new Error(`${file}: read ${total} bytes of ${size}`);
    return size / seconds;
  } finally {
    closeSync(fd);
  }
}
