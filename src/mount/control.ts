/**
 * A running mount's control channel: a Unix socket outside the mount, so no name inside
 * it is reserved. `cmkit stats <mountpoint>` connects and reads the stats as JSON.
 *
 * Who may connect: the socket lives in `<tmpdir>/cmkit-<uid>/`, a directory of the
 * mounting user's with mode 0700, so only that user and root reach it. A directory of
 * that name that is not ours, not a directory, or open to others is refused, never used
 * (someone else may have made it to listen in our place). The socket is named by a hash
 * of the mountpoint's real path. The server reads nothing from a client: it writes the
 * stats and closes.
 */
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

function dirOf(uid: number): string {
  return path.join(os.tmpdir(), `cmkit-${uid}`);
}

/** Named by the mountpoint's real path; only its parent is resolved (a stat of the mount itself would wait on the mount). */
function socketName(mountpoint: string): string {
  const abs = path.resolve(mountpoint);
  const real = path.join(realpathSync(path.dirname(abs)), path.basename(abs));
  return `${createHash('sha256').update(real).digest('hex').slice(0, 24)}.sock`;
}

/** This user's socket directory, made if missing; throws if it is not safely ours. */
function ownDir(): string {
  const uid = process.getuid?.() ?? 0;
  const dir = dirOf(uid);
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as { code?: string }).code !== 'EEXIST') throw e;
  }
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new Error(`${dir}: not a private directory of uid ${uid}; refusing to put the control socket there`);
  }
  return dir;
}

/** Serves `stats()` on the mount's socket until close() of the returned server. */
export async function serveControl(mountpoint: string, stats: () => unknown): Promise<{ path: string; close(): Promise<void> }> {
  const file = path.join(ownDir(), socketName(mountpoint));
  rmSync(file, { force: true }); // left by a mount that died
  const server = net.createServer((c) => c.end(JSON.stringify(stats(), null, 2) + '\n'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, resolve);
  });
  server.unref();
  return {
    path: file,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        rmSync(file, { force: true });
      }),
  };
}

/** The stats of the mount at `mountpoint`, as its control socket gives them. */
export async function queryControl(mountpoint: string): Promise<string> {
  const name = socketName(mountpoint);
  const uid = process.getuid?.() ?? 0;
  // Root may ask any user's mount; others only their own.
  const dirs = [dirOf(uid)];
  if (uid === 0) {
    for (const d of readdirSync(os.tmpdir())) if (/^cmkit-\d+$/.test(d)) dirs.push(path.join(os.tmpdir(), d));
  }
  let last: unknown;
  for (const dir of dirs) {
    try {
      return await new Promise<string>((resolve, reject) => {
        const chunks: Buffer[] = [];
        const c = net.connect(path.join(dir, name));
        c.on('data', (b: Buffer) => chunks.push(b));
        c.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        c.on('error', reject);
      });
    } catch (e) {
      last = e;
    }
  }
  throw new Error(`no running cmkit mount answers for ${mountpoint} (${(last as Error).message})`);
}
