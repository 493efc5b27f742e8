/**
 * A backing directory as the file server: local disk in tests; in use, any slow mount
 * (NFS, SSHFS, AFS) that a cmkit cache should front.
 *
 * Safety. The server may run as root on behalf of users who can change the backing
 * directory. It holds a descriptor of the root and reaches everything through it
 * (./backing-dir.ts): no symlink in any component is followed, nothing outside the root
 * is reachable, and what it creates is owned by the requester with exactly the mode
 * asked. Paths and names are byte strings (one char per byte, see bytePath()).
 *
 * Fids: `{cell: 1, volume: st_dev (low 32 bits), vnode: st_ino (low 32 bits), unique:
 * the inode number's upper bits mixed with the birth time}`. File systems hand a freed
 * inode number out again; the birth time tells the new file from the old, so nothing
 * cached for a deleted file is taken for the one that gets its number (on file systems
 * without birth times, ext2/3 and some network ones, it cannot). The server remembers
 * the path of each Fid it handed out; a path that now names another file answers ESTALE.
 *
 * Open files. While a client holds a file open (hold(), until release()), the server
 * keeps a descriptor of it and reaches the file through that alone (new descriptors by
 * its /proc magic link): an open file unlinked, renamed over or moved, through the
 * server or outside it, stays the file its opener has until the last release, as on a
 * local file system. A file that cannot be opened is reached by its path as before.
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
 * A store (or a setattr or rename through the server) runs alone on its file, so it
 * never looks like a foreign change to another RPC; fetches and status RPCs of one file
 * run side by side.
 *
 * Namespace RPCs (getattr, readdir, create, mkdir, mknod, symlink, readlink, link,
 * unlink, rmdir, rename, setattr, statfs) take byte-string paths relative to the root,
 * pay the same latency, and keep the server's own changes from looking foreign: a rename
 * moves the remembered paths, and a setattr through the server restamps the file. They
 * reject with the file system's error (its `errno` and `code`).
 */
import type { BigIntStats } from 'node:fs';
import { constants } from 'node:fs';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';

import { invalidArgType, outOfRange } from '../core/errors.js';
import { checkFid, Fid } from '../core/fid.js';
import { checkObject } from '../core/validate.js';
import { BackingDir, checkBytePath, fd, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type BackingAttr, type DirEntryAttr, type Time } from './backing-dir.js';
import { Rights, type FetchResult, type FileServer, type FileStatus, type StatusReply, type StoreOptions, type StoreReply } from './file-server.js';
import { Callbacks } from './callbacks.js';
import { ServerError } from './server-error.js';
import { Wire } from './wire.js';

export { bytePath } from './backing-dir.js';
export type { Time } from './backing-dir.js';

export interface DirectoryFileServerOptions {
  /** Milliseconds added to every RPC (a slow link, for tests and benchmarks). @default 0 */
  readonly rpcLatencyMs?: number;
  /**
   * Bytes per second that fetches and stores share, as over one link; 0 for no limit
   * (a slow link, for tests and benchmarks). @default 0
   */
  readonly bandwidth?: number;
}

/** What the server counts: the truth for work avoided, as MemoryFileServer's counters. */
export interface DirectoryServerCounters {
  fetchStatus: number;
  fetchData: number;
  storeData: number;
  bytesFetched: number;
  bytesStored: number;
  /** Namespace RPCs: getattr, readdir, create, mkdir, mknod, symlink, readlink, link, unlink, rmdir, rename, setattr, statfs. */
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
  readonly rdev: number;
  readonly size: number;
  readonly blocks: number;
  readonly atime: Time;
  readonly mtime: Time;
  readonly ctime: Time;
}

export interface DirEntryInfo {
  readonly name: string;
  readonly attr: NodeAttr;
}

/** Who asks for a create: the new node's owner. */
export interface Requester {
  readonly uid: number;
  readonly gid: number;
}

/** The changes setattr makes; absent fields are left alone. */
export interface AttrChanges {
  readonly mode?: number | undefined;
  readonly uid?: number | undefined;
  readonly gid?: number | undefined;
  readonly atime?: Time | 'now' | undefined;
  readonly mtime?: Time | 'now' | undefined;
}

/** A version step no client's stores in flight can reach: marks a foreign change. */
export const FOREIGN_STEP = 2 ** 20;

const RENAME_NOREPLACE = 1;
const RENAME_EXCHANGE = 2;

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
  /** Clients' opens of the file (hold()) not yet released. */
  holds: number;
  /**
   * While holds > 0: a descriptor of the file (undefined if it could not be opened), which
   * every RPC on the file then goes through, so an unlinked or renamed open file stays
   * the file its opener has, as on a local file system.
   */
  held: Promise<number | undefined> | undefined;
}

/**
 * The descriptor `f` is held by, if any. A hold whose open failed (its path led elsewhere)
 * leaves none: its holder gets that failure, and every other RPC goes by the path as if
 * there were no hold. (Awaiting `f.held` itself would fail an unrelated RPC, such as the
 * restamp of a rename that has already happened, with the hold's ENOENT.)
 */
function descriptorOf(f: Seen): Promise<number | undefined> {
  return f.held === undefined ? Promise.resolve(undefined) : f.held.catch(() => undefined);
}

export class DirectoryFileServer {
  readonly #dir: BackingDir;
  readonly #rpcLatencyMs: number;
  /** @internal The link's bandwidth, which fetches and stores share. */
  readonly wire: Wire;
  readonly #files = new Map<string, Seen>();
  readonly #connections = new Set<DirectoryConnection>();
  #maxFileSize: Promise<number> | undefined;
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
    const bandwidth = options.bandwidth ?? 0;
    if (typeof bandwidth !== 'number') throw invalidArgType('options.bandwidth', 'of type number', bandwidth);
    if (!(bandwidth >= 0) || bandwidth === Infinity) {
      throw outOfRange('options.bandwidth', 'a finite number >= 0', bandwidth);
    }
    this.#dir = new BackingDir(root);
    this.#rpcLatencyMs = latency;
    this.wire = new Wire(bandwidth, (ms) => (ms > 0 ? sleep(ms) : Promise.resolve()));
  }

  /** @internal The backing directory (the mount opens files through it). */
  get dir(): BackingDir {
    return this.#dir;
  }

  /**
   * Finds files by Fid alone, as a cache that outlived this server's last run asks for
   * them (the unstored writes a cache file held): walks the backing tree, through held
   * directory descriptors and without following symlinks, until it has seen them all.
   * Resolves to the Fids it found; an RPC on one it did not find answers ESTALE.
   */
  async locate(fids: readonly Fid[]): Promise<Fid[]> {
    const wanted = new Map(fids.map((f) => [f.toString(), f]));
    const found: Fid[] = [];
    const dirs = [''];
    while (wanted.size > 0 && dirs.length > 0) {
      const dir = dirs.shift()!;
      let entries: DirEntryAttr[];
      try {
        entries = await this.#dir.readdirPlus(dir);
      } catch {
        continue; // gone or unreadable meanwhile: its files are not there to find
      }
      for (const e of entries) {
        const p = join(dir, e.name);
        if ((e.attr.mode & S_IFMT) === S_IFDIR) dirs.push(p);
        const key = fidOf(e.attr).toString();
        if ((e.attr.mode & S_IFMT) !== S_IFREG || !wanted.has(key)) continue;
        found.push(this.#remember(p, e.attr));
        wanted.delete(key);
      }
    }
    return found;
  }

  /** The Fid of a regular file under the root (`relative` a byte string). */
  async lookup(relative: string): Promise<Fid> {
    checkPath(relative, 'relative');
    const a = await this.#dir.lstat(relative);
    if ((a.mode & S_IFMT) !== S_IFREG) throw new ServerError('error', `${relative}: not a regular file`);
    return this.#remember(relative, a);
  }

  /** A Fid for the file `a` describes, remembered with its path (its version kept). */
  #remember(p: string, a: BackingAttr): Fid {
    const fid = fidOf(a);
    const key = fid.toString();
    const seen = this.#files.get(key);
    if (seen === undefined) {
      this.#files.set(key, { fid, path: p, dataVersion: firstVersion(a), stamp: stampOf(a), exclusive: Promise.resolve(), shared: new Set(), holds: 0, held: undefined });
    } else {
      // Found under another path (moved outside the server, or a hard link): the same
      // file, its version kept; #notice will see whether its contents changed too.
      seen.path = p;
    }
    return fid;
  }

  async #namespaceRpc<T>(body: () => Promise<T>): Promise<T> {
    this.counters.namespace++;
    if (this.#rpcLatencyMs > 0) await sleep(this.#rpcLatencyMs);
    return body();
  }

  #attrOf(p: string, a: BackingAttr): NodeAttr {
    return nodeAttr(a, kindOf(a.mode) === 'file' ? this.#remember(p, a) : undefined);
  }

  /**
   * A client has the file open: keep it reachable until release(), whatever happens to
   * its names (unlinked, renamed over, moved outside), as a local file system keeps an
   * open file. A file that cannot be opened is reached by its path as before. `at`: the
   * path the opener came by, if it still has one; it must still lead to the file.
   * Rejects with ESTALE if the file's path leads to another file or none now.
   */
  async hold(fid: Fid, at?: string): Promise<void> {
    const f = this.#seen(fid);
    for (let attempt = 1; ; attempt++) {
      if (at !== undefined && f.held !== undefined) {
        // A descriptor is there already (another opener's, or one whose close is queued),
        // so the check openSeen makes does not happen: make it here.
        checkPath(at, 'at');
        const a = await this.#dir.lstat(at).catch(() => undefined);
        if (a === undefined || !namesFile(a, f.fid)) throw new ServerError('error', `${at}: now another file`, -ESTALE);
      }
      const mine = this.#startHold(f, () =>
        this.openSeen(f, constants.O_RDONLY, at).catch((e: unknown) => {
          // The path names another file or none now: the client's open must fail (ESTALE
          // makes the kernel look the name up again). Other failures leave the path.
          const code = (e as { errno?: number }).errno;
          if (code === -ESTALE || code === -ENOENT) throw e;
          return undefined;
        }),
      );
      const held = f.held;
      try {
        await held;
        return;
      } catch {
        if (--f.holds === 0 && f.held === held) f.held = undefined;
        // Another hold's open failed (by a path that no longer names the file), and this
        // one joined it: its own path, checked above, may still be right. Once the others
        // that joined have let go, it opens by that path itself.
        if (mine || at === undefined || attempt === 3) throw new ServerError('error', `${at ?? f.path}: now another file`, -ESTALE);
        await nextTurn();
      }
    }
  }

  /**
   * Counts a hold of `f`; the first one (with no descriptor left from an earlier hold
   * whose close is still queued) takes the descriptor `open` gives. True if it did.
   */
  #startHold(f: Seen, open: () => Promise<number | undefined>): boolean {
    if (f.holds++ > 0 || f.held !== undefined) return false;
    f.held = open();
    return true;
  }

  /**
   * The open hold() counted is closed; with the last, the server lets the file go. The
   * descriptor is closed in the file's turn, after every RPC queued before (a prefetch
   * still in flight goes on reading the file it started on, never a recycled descriptor).
   */
  async release(fid: Fid): Promise<void> {
    const f = this.#files.get(checkFid(fid, 'fid').toString());
    if (f === undefined || f.holds === 0) return;
    if (--f.holds > 0) return;
    const held = f.held;
    await this.#inTurn(f, async () => {
      if (f.holds > 0 || f.held !== held) return; // held again meanwhile
      f.held = undefined;
      const h = await held?.catch(() => undefined);
      if (h !== undefined) await fd.close(h);
    });
  }

  /** The attributes of a regular file the server handed out, held open or by its path. */
  fileAttr(fid: Fid): Promise<NodeAttr> {
    return this.#namespaceRpc(async () => {
      const f = this.#seen(fid);
      return this.#inTurn(f, async () => nodeAttr(await this.attrNow(f), fid), true);
    });
  }

  /** setattr of a regular file the server handed out, held open or by its path. */
  setFileAttr(fid: Fid, changes: AttrChanges): Promise<NodeAttr> {
    return this.#namespaceRpc(async () => {
      const f = this.#seen(fid);
      return this.#inTurn(f, async () => {
        await this.#notice(f);
        const h = await descriptorOf(f);
        const after = h !== undefined ? await this.#dir.setattrOfOpen(h, changes) : await this.#dir.setattr(f.path, changes);
        f.stamp = stampOf(after);
        return nodeAttr(after, fid);
      });
    });
  }

  /** @internal The descriptor the file is held by, if any (see descriptorOf). */
  descriptorOf(f: Seen): Promise<number | undefined> {
    return descriptorOf(f);
  }

  /** @internal The file's attributes now: through its held descriptor, else at its path. */
  async attrNow(f: Seen): Promise<BackingAttr> {
    const h = await descriptorOf(f);
    return h !== undefined ? this.#dir.attrOfOpen(h) : this.#dir.lstat(f.path);
  }

  /** The node at `relative` (not following a last symlink). */
  getattr(relative: string): Promise<NodeAttr> {
    checkPath(relative, 'relative');
    return this.#namespaceRpc(async () => this.#attrOf(relative, await this.#dir.lstat(relative)));
  }

  /** The entries of the directory at `relative` (not "." and ".."), with their attributes: one RPC. */
  readdir(relative: string): Promise<DirEntryInfo[]> {
    checkPath(relative, 'relative');
    return this.#namespaceRpc(async () =>
      (await this.#dir.readdirPlus(relative)).map((e) => ({ name: e.name, attr: this.#attrOf(join(relative, e.name), e.attr) })),
    );
  }

  /**
   * Creates an empty regular file owned by `who` (refused if the name exists). With
   * `hold`, the new file is held open as hold() would, from the moment it exists: no
   * rename or unlink by anyone else can come between the create and the hold.
   */
  create(relative: string, mode: number, who: Requester = serverSelf(), hold = false): Promise<NodeAttr> {
    checkPath(relative, 'relative');
    return this.#namespaceRpc(async () => {
      const h = await this.#dir.openFile(relative, constants.O_CREAT | constants.O_RDWR, mode, who.uid, who.gid);
      let kept = false;
      try {
        const attr = this.#attrOf(relative, await this.#dir.attrOfOpen(h));
        if (hold) kept = this.#startHold(this.#seen(attr.fid!), () => Promise.resolve(h));
        return attr;
      } finally {
        if (!kept) await fd.close(h);
      }
    });
  }

  mkdir(relative: string, mode: number, who: Requester = serverSelf()): Promise<NodeAttr> {
    checkPath(relative, 'relative');
    return this.#namespaceRpc(async () => this.#attrOf(relative, await this.#dir.mkdir(relative, mode, who.uid, who.gid)));
  }

  /** A FIFO, socket or device node (`mode` carries the type). */
  mknod(relative: string, mode: number, rdev: number, who: Requester = serverSelf()): Promise<NodeAttr> {
    checkPath(relative, 'relative');
    return this.#namespaceRpc(async () => this.#attrOf(relative, await this.#dir.mknod(relative, mode, rdev, who.uid, who.gid)));
  }

  /** A symlink at `relative` holding `target` (bytes, never resolved by the server). */
  symlink(target: string, relative: string, who: Requester = serverSelf()): Promise<NodeAttr> {
    checkPath(relative, 'relative');
    return this.#namespaceRpc(async () => this.#attrOf(relative, await this.#dir.symlink(target, relative, who.uid, who.gid)));
  }

  readlink(relative: string): Promise<string> {
    checkPath(relative, 'relative');
    return this.#namespaceRpc(() => this.#dir.readlink(relative));
  }

  /** A hard link `to` of the node at `from`; a file keeps its Fid and version. */
  link(from: string, to: string): Promise<NodeAttr> {
    checkPath(from, 'from');
    checkPath(to, 'to');
    return this.#namespaceRpc(async () => {
      const a = await this.#dir.link(from, to);
      const known = this.#files.get(fidOf(a).toString());
      // A new link changes the file's ctime: our doing, not a foreign change.
      if (known !== undefined) await this.#inTurn(known, () => this.restamp(known));
      return this.#attrOf(to, a);
    });
  }

  unlink(relative: string): Promise<void> {
    checkPath(relative, 'relative');
    return this.#namespaceRpc(() => this.#dir.unlink(relative));
  }

  rmdir(relative: string): Promise<void> {
    checkPath(relative, 'relative');
    return this.#namespaceRpc(() => this.#dir.rmdir(relative));
  }

  /**
   * Renames `from` to `to` (replacing what is there unless RENAME_NOREPLACE (1); swapping
   * the two with RENAME_EXCHANGE (2)); files under it keep their Fids and versions.
   */
  rename(from: string, to: string, flags = 0): Promise<void> {
    checkPath(from, 'from');
    checkPath(to, 'to');
    if (typeof flags !== 'number' || (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) !== 0) throw outOfRange('flags', 'RENAME_NOREPLACE or RENAME_EXCHANGE', flags);
    return this.#namespaceRpc(async () => {
      await this.#dir.rename(from, to, flags);
      const moves: Array<[Seen, string]> = [];
      for (const f of this.#files.values()) {
        const moved = movedPath(f.path, from, to) ?? ((flags & RENAME_EXCHANGE) !== 0 ? movedPath(f.path, to, from) : undefined);
        if (moved !== undefined) moves.push([f, moved]);
      }
      for (const [f, moved] of moves) {
        f.path = moved;
        // rename sets the moved node's ctime: our doing, not a foreign change.
        // The rename has happened and is answered so whatever this finds: a record whose
        // stamp cannot be taken now (an earlier file's, whose path this was) sees the
        // ctime as a foreign change at its next RPC, which costs at most a refetch.
        if (moved === to || moved === from) await this.#inTurn(f, () => this.restamp(f)).catch(() => {});
      }
    });
  }

  /** Changes owner, mode and times; the file's version stays (its data did not change). */
  setattr(relative: string, changes: AttrChanges): Promise<NodeAttr> {
    checkPath(relative, 'relative');
    return this.#namespaceRpc(async () => {
      const a = await this.#dir.lstat(relative);
      const known = (a.mode & S_IFMT) === S_IFREG ? this.#files.get(this.#remember(relative, a).toString()) : undefined;
      if (known === undefined) return this.#attrOf(relative, await this.#dir.setattr(relative, changes));
      return this.#inTurn(known, async () => {
        await this.#notice(known);
        const after = await this.#dir.setattr(relative, changes);
        known.stamp = stampOf(after);
        return this.#attrOf(relative, after);
      });
    });
  }

  /** The backing file system's size and use. */
  statfs(): Promise<{ bsize: number; blocks: number; bfree: number; bavail: number; files: number; ffree: number; namemax: number }> {
    return this.#namespaceRpc(() => this.#dir.statfs());
  }

  /**
   * The largest file the backing file system can hold (probed once on an unnamed
   * temporary file), and never more than a JS number counts exactly.
   */
  maxFileSize(): Promise<number> {
    this.#maxFileSize ??= this.#dir.maxFileSize().then((n) => Math.min(n ?? Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER));
    return this.#maxFileSize;
  }

  /** Looks at the file now: a change made outside the server becomes a new version (then true). */
  async revalidate(fid: Fid): Promise<boolean> {
    const f = this.#seen(fid);
    return this.#inTurn(f, () => this.#notice(f));
  }

  /** The path (relative to the root) the server last knew fid by; undefined if never looked up. */
  pathOf(fid: Fid): string | undefined {
    return this.#files.get(fid.toString())?.path;
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
        const err = e as { message: string; errno?: number };
        throw new ServerError('error', `${rpc} ${f.path}: ${err.message}`, err.errno);
      }
    }, shared);
  }

  /** @internal A descriptor of the file's data, checked to be the file `f` names (found at `at`). */
  async openSeen(f: Seen, flags: number, at = f.path): Promise<number> {
    const held = await descriptorOf(f);
    if (held !== undefined) return fd.reopen(held, flags);
    const h = await this.#dir.openFile(at, flags);
    try {
      const st = await fd.fstat(h);
      if (!fidOfStats(st).equals(f.fid)) throw new ServerError('error', `${at}: now another file`, -ESTALE);
      // Found by the opener's path (another link of it, say): the path to use from now on.
      f.path = at;
      return h;
    } catch (e) {
      await fd.close(h);
      throw e;
    }
  }

  #seen(fid: Fid): Seen {
    const f = this.#files.get(checkFid(fid, 'fid').toString());
    if (f === undefined) throw new ServerError('error', `${fid}: not looked up on this server`, -ESTALE);
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
    const a = await this.attrNow(f);
    f.stamp = stampOf(a);
    return { dataVersion: f.dataVersion, length: a.size };
  }

  /** @internal Breaks the callback of every connection but `from` that caches the file. */
  breakCallbacks(fid: Fid, from: DirectoryConnection | undefined): void {
    for (const c of this.#connections) if (c !== from) c.breakCallback(fid);
  }

  /** A change made outside this server raises the version by FOREIGN_STEP; another file at the path is ESTALE. */
  async #notice(f: Seen): Promise<boolean> {
    const a = await this.attrNow(f);
    if (!namesFile(a, f.fid)) throw new ServerError('error', `${f.path}: now another file`, -ESTALE);
    const stamp = stampOf(a);
    if (stamp === f.stamp) return false;
    f.stamp = stamp;
    f.dataVersion += FOREIGN_STEP;
    this.breakCallbacks(f.fid, undefined);
    return true;
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

  pathOf(fid: Fid): string | undefined {
    return this.#server.pathOf(fid);
  }

  breakCallback(fid: Fid): void {
    this.#callbacks.break(fid);
  }

  fetchStatus(fid: Fid): Promise<StatusReply> {
    return this.#server.serve('fetchStatus', fid, async (f) => {
      this.#callbacks.promise(fid);
      const a = await this.#server.attrNow(f);
      // A directory grants what its mode bits grant this process; rights per user
      // would need the server's own ACLs.
      return { dataVersion: f.dataVersion, length: a.size, rights: Rights.All };
    });
  }

  fetchData(fid: Fid, offset: number, length: number): Promise<FetchResult> {
    return this.#server.serve('fetchData', fid, async (f) => {
      this.#callbacks.promise(fid);
      // Taken before reading: another fetch may notice a foreign change meanwhile, and
      // these bytes must not be labelled with the version that change gets.
      const dataVersion = f.dataVersion;
      const read = async (h: number): Promise<FetchResult> => {
        const size = Number((await fd.fstat(h)).size);
        // Unzeroed: every byte returned is read from the file first.
        const data = Buffer.allocUnsafe(Math.max(0, Math.min(length, size - offset)));
        let got = 0;
        while (got < data.length) {
          const { bytesRead } = await fd.read(h, data, got, data.length - got, offset + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        this.#server.counters.bytesFetched += got;
        await this.#server.wire.transfer(got);
        return { data: data.subarray(0, got), dataVersion, length: size };
      };
      // A held file is read through its descriptor: this RPC's turn keeps release from
      // closing it meanwhile (the close waits for every RPC queued before it). That saves
      // an open and a close per fetch, each a round trip where the backing directory is
      // itself a network mount.
      const held = await this.#server.descriptorOf(f);
      return held !== undefined ? read(held) : this.#withFile(f, constants.O_RDONLY, read);
    });
  }

  storeData(fid: Fid, offset: number, data: Uint8Array, options: StoreOptions = {}): Promise<StoreReply> {
    return this.#server.serve('storeData', fid, async (f) => {
      // The bytes cross the link before the server has them.
      await this.#server.wire.transfer(data.length);
      // serve() has just looked at the file: a change made outside is in dataVersion now.
      const conflict = options.baseVersion !== undefined && options.baseVersion !== f.dataVersion;
      const write = async (h: number): Promise<void> => {
        if (options.truncPos !== undefined && options.truncPos < Number((await fd.fstat(h)).size)) await fd.ftruncate(h, options.truncPos);
        let put = 0;
        while (put < data.length) put += await fd.write(h, data, put, data.length - put, offset + put);
        if (options.fileLength !== undefined && (!conflict || options.fileLengthSet === true)) await fd.ftruncate(h, options.fileLength);
        // Stored means on disk: a crash after the reply must not lose what we acknowledged.
        await fd.fdatasync(h);
      };
      await this.#withFile(f, constants.O_RDWR, async (h) => {
        try {
          await write(h);
        } catch (e) {
          // A store that failed half-way (ENOSPC, say) may have changed the file: that
          // is our doing, not a foreign change, and the client will send it again.
          await this.#server.restamp(f).catch(() => {});
          throw e;
        }
      });
      f.dataVersion++;
      this.#server.counters.bytesStored += data.length;
      this.#callbacks.promise(fid);
      this.#server.breakCallbacks(fid, this);
      return { ...(await this.#server.restamp(f)), conflict };
    });
  }

  async #withFile<T>(f: Seen, flags: number, fn: (h: number) => Promise<T>): Promise<T> {
    const h = await this.#server.openSeen(f, flags);
    try {
      return await fn(h);
    } finally {
      await fd.close(h);
    }
  }
}

const ESTALE = 116;
const ENOENT = 2;

function checkPath(p: string, name: string): void {
  if (typeof p !== 'string') throw invalidArgType(name, 'of type string', p);
  checkBytePath(p, name);
}

function join(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

/** `p` after a rename of `from` to `to`, or undefined if the rename did not move it. */
function movedPath(p: string, from: string, to: string): string | undefined {
  if (p === from) return to;
  return p.startsWith(from + '/') ? to + p.slice(from.length) : undefined;
}

/** The process itself: the owner of what it creates when no requester is named. */
function serverSelf(): Requester {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

/** A namespace RPC's view of the node `a` describes; `fid` if it is a regular file. */
function nodeAttr(a: BackingAttr, fid: Fid | undefined): NodeAttr {
  return {
    kind: kindOf(a.mode),
    fid,
    mode: a.mode,
    nlink: a.nlink,
    uid: a.uid,
    gid: a.gid,
    rdev: a.rdev,
    size: a.size,
    blocks: a.blocks,
    atime: a.atime,
    mtime: a.mtime,
    ctime: a.ctime,
  };
}

function kindOf(mode: number): NodeKind {
  const t = mode & S_IFMT;
  return t === S_IFREG ? 'file' : t === S_IFDIR ? 'directory' : t === S_IFLNK ? 'symlink' : 'other';
}

/** The birth time folded into 32 bits: what tells a reused inode number's new file from the old. */
function uniqueOf(inoHigh: number, btimeSec: number, btimeNsec: number): number {
  let h = Math.imul(inoHigh ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (btimeSec >>> 0) ^ Math.floor(btimeSec / 2 ** 32), 0xc2b2ae35);
  h = Math.imul(h ^ btimeNsec, 0x27d4eb2f);
  return (h ^ (h >>> 15)) >>> 0;
}

/** Whether `a` describes the regular file `fid` names (not another one at its path). */
function namesFile(a: BackingAttr, fid: Fid): boolean {
  return (a.mode & S_IFMT) === S_IFREG && fidOf(a).equals(fid);
}

function fidOf(a: BackingAttr): Fid {
  return new Fid(1, a.dev % 2 ** 32, a.ino % 2 ** 32, uniqueOf(a.inoHigh, a.btime.sec, a.btime.nsec));
}

function fidOfStats(st: BigIntStats): Fid {
  const birth = st.birthtimeNs;
  return new Fid(1, Number(st.dev & 0xffff_ffffn), Number(st.ino & 0xffff_ffffn),
    uniqueOf(Number(st.ino >> 32n), Number(birth / 1_000_000_000n), Number(birth % 1_000_000_000n)));
}

/**
 * The version a file has when this server first sees it: 2^21 times a 31-bit hash of
 * its stamp, plus one. Stable across restarts while the file is unchanged, so a cache
 * that outlived a server (a cache file) finds its blocks still current; and a file
 * changed meanwhile (any change moves the ctime) starts from another multiple of 2^21,
 * which no run's versions reach by stores and FOREIGN_STEPs from theirs short of a hash
 * collision (1 in 2^31).
 */
function firstVersion(a: BackingAttr): number {
  const stamp = `${stampOf(a)}:${a.dev}:${a.ino}:${a.inoHigh}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < stamp.length; i++) h = Math.imul(h ^ stamp.charCodeAt(i), 0x01000193);
  return ((h ^ (h >>> 16)) >>> 1) * 2 ** 21 + 1;
}

function stampOf(a: BackingAttr): string {
  return `${a.size}:${a.mtime.sec}.${a.mtime.nsec}:${a.ctime.sec}.${a.ctime.nsec}`;
}
