/**
 * A backing directory as the file server: local disk in tests; in use, any slow mount
 * (NFS, SSHFS, AFS) that a cmkit cache should front.
 *
 * Fids: `{cell: 1, volume: st_dev (low 32 bits), vnode: st_ino (low 32 bits), unique:
 * st_ino / 2^32}`, handed out by `lookup(path)`; the server remembers the path of each
 * Fid it handed out (a file renamed outside the server is found again by lookup).
 *
 * Data versions. A directory has no version counter, so the server keeps one per file:
 * each storeData through the server raises it by exactly 1 (what the cache's version
 * ranges rely on to keep its buffers valid across its own stores). A change made by
 * anyone else is seen when the file's (size, mtime, ctime) differ from what the server
 * last saw, and raises the version by FOREIGN_STEP, far more than any client has stores
 * in flight, so caches treat it as a foreign change, and breaks every connection's
 * callback. The server sees such a change when it next looks at the file: at any RPC on
 * it, or at revalidate(fid) (call it when a file is opened, for the close-to-open
 * consistency NFS clients give). Limits: a foreign write that keeps the size and lands
 * within the file system's timestamp granularity of the previous change is not seen
 * (ext4, xfs, btrfs: 1 ns; some network file systems: 1 s), nor is one that lands
 * between a store's last write and the server's look at the result.
 *
 * A store (or a chmod, utimes or rename through the server) runs alone on its file, so
 * it never looks like a foreign change to another RPC; fetches and status RPCs of one
 * file run side by side.
 *
 * Namespace RPCs (getattr, readdir, create, mkdir, unlink, rmdir, rename, setattr,
 * statfs) take paths relative to the root, pay the same latency, and keep the server's
 * own changes from looking foreign: a rename moves the remembered paths, and a chmod or
 * utimes through the server restamps the file.
 */
import { chmod, lstat, mkdir, open, readdir, rename, rmdir, stat, statfs, unlink, utimes, type FileHandle } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { invalidArgType, outOfRange } from '../core/errors.js';
import { Fid } from '../core/fid.js';
import { checkObject } from '../core/validate.js';
import { Rights, type FetchResult, type FileServer, type FileStatus, type StatusReply, type StoreOptions } from './file-server.js';
import { Callbacks } from './callbacks.js';
import { ServerError } from './server-error.js';

export interface DirectoryFileServerOptions {
  /** Milliseconds added to every RPC (a slow link, for tests and benchmarks). @default 0 */
  readonly rpcLatencyMs?: number;
}

/** What the server counts: the truth for work avoided, as MemoryFileServer's counters. */
export interface DirectoryServerCounters {
  fetchStatus: number;
  fetchData: number;
  storeData: number;
  bytesFetched: number;
  bytesStored: number;
  /** Namespace RPCs: getattr, readdir, create, mkdir, unlink, rmdir, rename, setattr, statfs. */
  namespace: number;
}

export type NodeKind = 'file' | 'directory' | 'symlink' | 'other';

/** A namespace RPC's view of one node; `fid` names a regular file's data. */
export interface NodeAttr {
  readonly kind: NodeKind;
  readonly fid: Fid | undefined;
  readonly mode: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly blocks: number;
  readonly atimeMs: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
}

export interface DirEntryInfo {
  readonly name: string;
  readonly kind: NodeKind;
}

/** The changes setattr makes; absent fields are left alone. */
export interface AttrChanges {
  readonly mode?: number | undefined;
  readonly atimeMs?: number | undefined;
  readonly mtimeMs?: number | undefined;
}

/** A version step no client's stores in flight can reach: marks a foreign change. */
export const FOREIGN_STEP = 2 ** 20;

interface Seen {
  readonly fid: Fid;
  path: string;
  dataVersion: number;
  /** size, mtime and ctime (ns) as the server last left or saw them. */
  stamp: string;
  /** The last exclusive RPC (a store) queued on this file: every later RPC waits for it. */
  exclusive: Promise<unknown>;
  /** Shared RPCs (fetches) running or queued: the next exclusive one waits for them. */
  readonly shared: Set<Promise<unknown>>;
}

export class DirectoryFileServer {
  readonly #root: string;
  readonly #rpcLatencyMs: number;
  readonly #files = new Map<string, Seen>();
  readonly #connections = new Set<DirectoryConnection>();
  counters: DirectoryServerCounters = {
    fetchStatus: 0,
    fetchData: 0,
    storeData: 0,
    bytesFetched: 0,
    bytesStored: 0,
    namespace: 0,
  };

  constructor(root: string, options: DirectoryFileServerOptions = {}) {
    if (typeof root !== 'string') throw invalidArgType('root', 'of type string', root);
    checkObject(options, 'options');
    const latency = options.rpcLatencyMs ?? 0;
    if (typeof latency !== 'number' || !(latency >= 0) || latency === Infinity) {
      throw outOfRange('options.rpcLatencyMs', 'a finite number >= 0', latency);
    }
    this.#root = path.resolve(root);
    this.#rpcLatencyMs = latency;
  }

  /** The Fid of a regular file under the root; `relative` may not leave the root. */
  async lookup(relative: string): Promise<Fid> {
    const full = this.#resolve(relative, 'relative');
    const st = await stat(full, { bigint: true });
    if (!st.isFile()) throw new ServerError('error', `${relative}: not a regular file`);
    return this.#remember(full, st);
  }

  /** A Fid for the file `st` describes, remembered with its path (its version kept). */
  #remember(full: string, st: BigIntStats): Fid {
    const fid = new Fid(1, Number(st.dev & 0xffff_ffffn), Number(st.ino & 0xffff_ffffn), Number((st.ino >> 32n) & 0xffff_ffffn));
    const key = fid.toString();
    const seen = this.#files.get(key);
    if (seen === undefined) {
      this.#files.set(key, { fid, path: full, dataVersion: 1, stamp: stampOf(st), exclusive: Promise.resolve(), shared: new Set() });
    } else {
      // Found under another path (moved outside the server): the same file, its version
      // kept; #notice will see whether its contents changed too.
      seen.path = full;
    }
    return fid;
  }

  #resolve(relative: string, name: string): string {
    if (typeof relative !== 'string') throw invalidArgType(name, 'of type string', relative);
    const full = path.resolve(this.#root, relative);
    if (full !== this.#root && !full.startsWith(this.#root + path.sep)) {
      throw outOfRange(name, `a path inside ${this.#root}`, relative);
    }
    return full;
  }

  async #namespaceRpc<T>(body: () => Promise<T>): Promise<T> {
    this.counters.namespace++;
    if (this.#rpcLatencyMs > 0) await sleep(this.#rpcLatencyMs);
    return body();
  }

  #attrOf(full: string, st: BigIntStats): NodeAttr {
    const kind = kindOf(st);
    return {
      kind,
      fid: kind === 'file' ? this.#remember(full, st) : undefined,
      mode: Number(st.mode),
      nlink: Number(st.nlink),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: Number(st.size),
      blocks: Number(st.blocks),
      atimeMs: Number(st.atimeNs) / 1e6,
      mtimeMs: Number(st.mtimeNs) / 1e6,
      ctimeMs: Number(st.ctimeNs) / 1e6,
    };
  }

  /** The node at `relative` (not following a last symlink). Rejects with the fs error (its `code`). */
  getattr(relative: string): Promise<NodeAttr> {
    const full = this.#resolve(relative, 'relative');
    return this.#namespaceRpc(async () => this.#attrOf(full, await lstatBig(full)));
  }

  /** The names in the directory at `relative`, with their kinds. */
  readdir(relative: string): Promise<DirEntryInfo[]> {
    const full = this.#resolve(relative, 'relative');
    return this.#namespaceRpc(async () =>
      (await readdir(full, { withFileTypes: true })).map((d) => ({ name: d.name, kind: kindOf(d) })),
    );
  }

  /** Creates an empty regular file (refused if the name exists). */
  create(relative: string, mode: number): Promise<NodeAttr> {
    const full = this.#resolve(relative, 'relative');
    return this.#namespaceRpc(async () => {
      await (await open(full, 'wx', mode & 0o7777)).close();
      return this.#attrOf(full, await lstatBig(full));
    });
  }

  mkdir(relative: string, mode: number): Promise<NodeAttr> {
    const full = this.#resolve(relative, 'relative');
    return this.#namespaceRpc(async () => {
      await mkdir(full, { mode: mode & 0o7777 });
      return this.#attrOf(full, await lstatBig(full));
    });
  }

  unlink(relative: string): Promise<void> {
    const full = this.#resolve(relative, 'relative');
    return this.#namespaceRpc(() => unlink(full));
  }

  rmdir(relative: string): Promise<void> {
    const full = this.#resolve(relative, 'relative');
    return this.#namespaceRpc(() => rmdir(full));
  }

  /** Renames `from` to `to` (replacing a file there); files under it keep their Fids and versions. */
  rename(from: string, to: string): Promise<void> {
    const src = this.#resolve(from, 'from');
    const dst = this.#resolve(to, 'to');
    return this.#namespaceRpc(async () => {
      await rename(src, dst);
      for (const f of this.#files.values()) {
        if (f.path === src || f.path.startsWith(src + path.sep)) {
          f.path = dst + f.path.slice(src.length);
          // rename sets the moved node's ctime: our doing, not a foreign change.
          if (f.path === dst) await this.#inTurn(f, () => this.restamp(f));
        }
      }
    });
  }

  /** Changes mode and times; the file's version stays (its data did not change). */
  setattr(relative: string, changes: AttrChanges): Promise<NodeAttr> {
    const full = this.#resolve(relative, 'relative');
    return this.#namespaceRpc(async () => {
      const apply = async (): Promise<void> => {
        if (changes.mode !== undefined) await chmod(full, changes.mode & 0o7777);
        if (changes.atimeMs !== undefined || changes.mtimeMs !== undefined) {
          const st = await lstatBig(full);
          const atime = (changes.atimeMs ?? Number(st.atimeNs) / 1e6) / 1000;
          const mtime = (changes.mtimeMs ?? Number(st.mtimeNs) / 1e6) / 1000;
          await utimes(full, atime, mtime);
        }
      };
      const st = await lstatBig(full);
      const known = st.isFile() ? this.#files.get(this.#remember(full, st).toString()) : undefined;
      if (known === undefined) {
        await apply();
      } else {
        await this.#inTurn(known, async () => {
          await this.#notice(known);
          await apply();
          await this.restamp(known);
        });
      }
      return this.#attrOf(full, await lstatBig(full));
    });
  }

  /** The backing file system's size and use: [bsize, blocks, bfree, bavail, files, ffree]. */
  statfs(): Promise<{ bsize: number; blocks: number; bfree: number; bavail: number; files: number; ffree: number }> {
    return this.#namespaceRpc(async () => {
      const s = await statfs(this.#root);
      return { bsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree };
    });
  }

  /** Looks at the file now: a change made outside the server becomes a new version. */
  async revalidate(fid: Fid): Promise<void> {
    const f = this.#seen(fid);
    await this.#inTurn(f, () => this.#notice(f));
  }

  /** A new client connection: one cache manager's view of this server. */
  connect(): FileServer {
    const c = new DirectoryConnection(this);
    this.#connections.add(c);
    return c;
  }

  /** @internal Latency, then the RPC's body on the file's current state. */
  async serve<T>(rpc: 'fetchStatus' | 'fetchData' | 'storeData', fid: Fid, body: (f: Seen) => Promise<T>): Promise<T> {
    this.counters[rpc]++;
    if (this.#rpcLatencyMs > 0) await sleep(this.#rpcLatencyMs);
    const f = this.#seen(fid);
    const shared = rpc !== 'storeData';
    return this.#inTurn(f, async () => {
      try {
        await this.#notice(f);
        return await body(f);
      } catch (e) {
        if (e instanceof ServerError) throw e;
        throw new ServerError('error', `${rpc} ${f.path}: ${(e as Error).message}`);
      }
    }, shared);
  }

  #seen(fid: Fid): Seen {
    const f = this.#files.get(fid.toString());
    if (f === undefined) throw new ServerError('error', `${fid}: not looked up on this server`);
    return f;
  }

  /** Runs `fn` after the file's earlier exclusive RPC, and, if exclusive, its earlier shared ones. */
  #inTurn<T>(f: Seen, fn: () => Promise<T>, shared = false): Promise<T> {
    if (shared) {
      const run = f.exclusive.then(fn);
      const settled = run.catch(() => {});
      f.shared.add(settled);
      void settled.then(() => f.shared.delete(settled));
      return run;
    }
    const run = Promise.all([f.exclusive, ...f.shared]).then(fn);
    f.exclusive = run.catch(() => {});
    return run;
  }

  /** @internal After a store: what the file looks like now is our own doing. */
  async restamp(f: Seen): Promise<FileStatus> {
    const st = await stat(f.path, { bigint: true });
    f.stamp = stampOf(st);
    return { dataVersion: f.dataVersion, length: Number(st.size) };
  }

  /** @internal Breaks the callback of every connection but `from` that caches the file. */
  breakCallbacks(fid: Fid, from: DirectoryConnection | undefined): void {
    for (const c of this.#connections) if (c !== from) c.breakCallback(fid);
  }

  /** A change made outside this server raises the version by FOREIGN_STEP. */
  async #notice(f: Seen): Promise<void> {
    const stamp = stampOf(await stat(f.path, { bigint: true }));
    if (stamp === f.stamp) return;
    f.stamp = stamp;
    f.dataVersion += FOREIGN_STEP;
    this.breakCallbacks(f.fid, undefined);
  }
}

class DirectoryConnection implements FileServer {
  readonly #server: DirectoryFileServer;
  readonly #callbacks = new Callbacks();

  constructor(server: DirectoryFileServer) {
    this.#server = server;
  }

  onCallbackBreak(listener: (fid: Fid) => void): void {
    this.#callbacks.onBreak(listener);
  }

  breakCallback(fid: Fid): void {
    this.#callbacks.break(fid);
  }

  fetchStatus(fid: Fid): Promise<StatusReply> {
    return this.#server.serve('fetchStatus', fid, async (f) => {
      this.#callbacks.promise(fid);
      const st = await stat(f.path);
      // A directory grants what its mode bits grant this process; rights per user
      // would need the server's own ACLs.
      return { dataVersion: f.dataVersion, length: st.size, rights: Rights.All };
    });
  }

  fetchData(fid: Fid, offset: number, length: number): Promise<FetchResult> {
    return this.#server.serve('fetchData', fid, async (f) => {
      this.#callbacks.promise(fid);
      // Taken before reading: another fetch may notice a foreign change meanwhile, and
      // these bytes must not be labelled with the version that change gets.
      const dataVersion = f.dataVersion;
      return withFile(f.path, 'r', async (h) => {
        const size = (await h.stat()).size;
        // Unzeroed: every byte returned is read from the file first.
        const data = Buffer.allocUnsafe(Math.max(0, Math.min(length, size - offset)));
        let got = 0;
        while (got < data.length) {
          const { bytesRead } = await h.read(data, got, data.length - got, offset + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        this.#server.counters.bytesFetched += got;
        return { data: data.subarray(0, got), dataVersion, length: size };
      });
    });
  }

  storeData(fid: Fid, offset: number, data: Uint8Array, options: StoreOptions = {}): Promise<FileStatus> {
    return this.#server.serve('storeData', fid, async (f) => {
      await withFile(f.path, 'r+', async (h) => {
        if (options.truncPos !== undefined && options.truncPos < (await h.stat()).size) await h.truncate(options.truncPos);
        let put = 0;
        while (put < data.length) put += (await h.write(data, put, data.length - put, offset + put)).bytesWritten;
        if (options.fileLength !== undefined) await h.truncate(options.fileLength);
        // Stored means on disk: a crash after the reply must not lose what we acknowledged.
        await h.datasync();
      });
      f.dataVersion++;
      this.#server.counters.bytesStored += data.length;
      this.#callbacks.promise(fid);
      this.#server.breakCallbacks(fid, this);
      return this.#server.restamp(f);
    });
  }
}

async function withFile<T>(file: string, flags: string, fn: (h: FileHandle) => Promise<T>): Promise<T> {
  const h = await open(file, flags);
  try {
    return await fn(h);
  } finally {
    await h.close();
  }
}

/** The kind of a node, from a stat or a directory entry. */
function kindOf(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): NodeKind {
  return st.isFile() ? 'file' : st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : 'other';
}

function lstatBig(full: string): Promise<BigIntStats> {
  return lstat(full, { bigint: true });
}

function stampOf(st: { size: bigint; mtimeNs: bigint; ctimeNs: bigint }): string {
  return `${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}
