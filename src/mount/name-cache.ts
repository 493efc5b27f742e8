/**
 * Names and attributes the mount has asked the server for, kept for `ttlMs` so that a
 * tree walked again (find, ls -lR, tar c, git status) is answered from memory instead of
 * one server round trip per entry. The kernel keeps what we answer for only its own
 * 1 s timeouts; this is what answers it after that.
 *
 * What it may serve, and why that is safe:
 *   - Every change made through the mount drops what it touches before the change is
 *     answered: the name (and everything below it, for a directory), its parent's
 *     listing, and for a file every path and listing that carries its Fid (a link's
 *     nlink, a setattr's mode). So the mount never shows its own change late.
 *   - A file with a handle open is never answered from here (its size and times move
 *     with writes the server has not stored yet), and one whose last handle closes is
 *     dropped then, after its store at close.
 *   - A change made outside the mount (on the backing directory itself, or by another
 *     client of a remote behind it) shows within `ttlMs`, as in sshfs's directory cache
 *     or NFS's attribute cache; the server's callback break for a file (it noticed a
 *     foreign change) drops that file at once. Opens still revalidate the file's data
 *     (close-to-open) whatever this holds.
 *   - An answer that was asked for before a change and arrives after it is not kept
 *     (`generation`): it may predate the change.
 */
import type { DirEntryInfo, NodeAttr } from '../server/directory-file-server.js';

/** Past this many kept answers, all are dropped (a cache: losing it costs only round trips). */
const MAX_KEPT = 200_000;

interface Kept<T> {
  readonly value: T;
  readonly until: number;
}

export class NameCache {
  readonly #ttlMs: number;
  readonly #now: () => number;
  /** Relative path -> its getattr answer. */
  readonly #attrs = new Map<string, Kept<NodeAttr>>();
  /** Relative directory path -> its listing (each entry with its attributes). */
  readonly #listings = new Map<string, Kept<DirEntryInfo[]>>();
  /** Fid -> the attr paths and listing directories that carry it. */
  readonly #byFid = new Map<string, { paths: Set<string>; dirs: Set<string> }>();
  /** Bumped by every change: an answer asked for at an older one is not kept. */
  #generation = 0;

  constructor(ttlMs: number, now: () => number = () => performance.now()) {
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  get enabled(): boolean {
    return this.#ttlMs > 0;
  }

  /** Take before asking the server; pass to keepAttr/keepListing with its answer. */
  get generation(): number {
    return this.#generation;
  }

  attr(path: string): NodeAttr | undefined {
    return this.#fresh(this.#attrs, path);
  }

  listing(path: string): DirEntryInfo[] | undefined {
    return this.#fresh(this.#listings, path);
  }

  keepAttr(path: string, attr: NodeAttr, generation: number): void {
    if (!this.enabled || generation !== this.#generation) return;
    if (this.#attrs.size >= MAX_KEPT || this.#byFid.size >= MAX_KEPT) this.#dropAll();
    this.#attrs.set(path, { value: attr, until: this.#now() + this.#ttlMs });
    if (attr.fid !== undefined) this.#index(attr.fid.toString()).paths.add(path);
  }

  /** Keeps a listing, and each entry's attributes as its path's (a lookup after readdir). */
  keepListing(path: string, entries: DirEntryInfo[], generation: number): void {
    if (!this.enabled || generation !== this.#generation) return;
    if (this.#listings.size >= MAX_KEPT) this.#dropAll();
    this.#listings.set(path, { value: entries, until: this.#now() + this.#ttlMs });
    for (const e of entries) {
      this.keepAttr(path === '' ? e.name : `${path}/${e.name}`, e.attr, generation);
      if (e.attr.fid !== undefined) this.#index(e.attr.fid.toString()).dirs.add(path);
    }
  }

  /**
   * The name at `path` changed (created, removed, renamed from or to, its attributes
   * set): drops it, everything below it, and its parent's listing and attributes.
   */
  nameChanged(path: string): void {
    this.#generation++;
    const below = `${path}/`;
    for (const p of this.#attrs.keys()) if (p === path || p.startsWith(below)) this.#attrs.delete(p);
    for (const p of this.#listings.keys()) if (p === path || p.startsWith(below)) this.#listings.delete(p);
    // The parent's listing, and its own attributes (mtime, nlink).
    this.#listings.delete(parentOf(path));
    this.#attrs.delete(parentOf(path));
  }

  /** The attributes at `path` (a directory's: it has no Fid) changed: drops them. */
  attrChanged(path: string): void {
    this.#generation++;
    this.#attrs.delete(path);
  }

  /** The file's attributes changed (written, linked, set, changed outside): drops every copy. */
  fileChanged(fid: { toString(): string }): void {
    this.#generation++;
    const key = fid.toString();
    const where = this.#byFid.get(key);
    if (where === undefined) return;
    this.#byFid.delete(key);
    for (const p of where.paths) this.#attrs.delete(p);
    for (const d of where.dirs) this.#listings.delete(d);
  }

  #dropAll(): void {
    this.#attrs.clear();
    this.#listings.clear();
    this.#byFid.clear();
  }

  #fresh<T>(map: Map<string, Kept<T>>, key: string): T | undefined {
    const kept = map.get(key);
    if (kept === undefined) return undefined;
    if (kept.until > this.#now()) return kept.value;
    map.delete(key);
    return undefined;
  }

  #index(key: string): { paths: Set<string>; dirs: Set<string> } {
    let where = this.#byFid.get(key);
    if (where === undefined) this.#byFid.set(key, (where = { paths: new Set(), dirs: new Set() }));
    return where;
  }
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}
