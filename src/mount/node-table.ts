/**
 * The kernel's inode numbers (FUSE node ids) and the paths they stand for.
 *
 * The kernel names every node by an id we hand out in a lookup reply, and holds it until
 * it forgets as many lookups as we answered. A node is (parent, name); its path is walked
 * up from there, so a rename moves a whole subtree by changing one record. Ids are never
 * reused while the kernel may hold them. Id 1 is the root, as FUSE requires.
 */
export const ROOT_INO = 1;

interface NodeRecord {
  parent: number;
  name: string;
  /** Lookups answered minus lookups forgotten: the kernel's references. */
  lookups: number;
  /** False once unlinked or replaced by a rename: its path names something else now. */
  linked: boolean;
}

export class NodeTable {
  readonly #nodes = new Map<number, NodeRecord>([[ROOT_INO, { parent: ROOT_INO, name: '', lookups: 1, linked: true }]]);
  /** `${parent}/${name}` -> id, for linked nodes. */
  readonly #byName = new Map<string, number>();
  #nextIno: number;

  /** `firstIno`: the first id to hand out (ids below it are the mount's own). */
  constructor(firstIno: number) {
    this.#nextIno = firstIno;
  }

  get size(): number {
    return this.#nodes.size;
  }

  /** The node's path relative to the root ('' for the root), or undefined if unlinked or unknown. */
  path(ino: number): string | undefined {
    const parts: string[] = [];
    for (let at = ino; at !== ROOT_INO; ) {
      const n = this.#nodes.get(at);
      if (n === undefined || !n.linked) return undefined;
      parts.push(n.name);
      at = n.parent;
    }
    return parts.reverse().join('/');
  }

  /** The path of `name` in directory `parent`. */
  childPath(parent: number, name: string): string | undefined {
    const p = this.path(parent);
    return p === undefined ? undefined : p === '' ? name : `${p}/${name}`;
  }

  /** The id of a linked child the kernel holds, if any. */
  child(parent: number, name: string): number | undefined {
    return this.#byName.get(key(parent, name));
  }

  /** Answers a lookup of (parent, name): its id, counted as one more kernel reference. */
  remember(parent: number, name: string): number {
    const k = key(parent, name);
    let ino = this.#byName.get(k);
    if (ino === undefined) {
      ino = this.#nextIno++;
      this.#nodes.set(ino, { parent, name, lookups: 0, linked: true });
      this.#byName.set(k, ino);
    }
    this.#nodes.get(ino)!.lookups++;
    return ino;
  }

  /** The kernel dropped `n` references; the record goes with the last (then true). */
  forget(ino: number, n: number): boolean {
    const rec = this.#nodes.get(ino);
    if (rec === undefined || ino === ROOT_INO) return false;
    rec.lookups -= n;
    if (rec.lookups > 0) return false;
    this.#nodes.delete(ino);
    if (rec.linked) this.#byName.delete(key(rec.parent, rec.name));
    return true;
  }

  /** (parent, name) is gone: a node the kernel still holds there keeps its id but no path. */
  unlinked(parent: number, name: string): void {
    const k = key(parent, name);
    const ino = this.#byName.get(k);
    if (ino === undefined) return;
    this.#byName.delete(k);
    this.#nodes.get(ino)!.linked = false;
  }

  /** A rename: whatever was at the destination is unlinked, the source moves there. */
  moved(parent: number, name: string, newParent: number, newName: string): void {
    this.unlinked(newParent, newName);
    const k = key(parent, name);
    const ino = this.#byName.get(k);
    if (ino === undefined) return;
    this.#byName.delete(k);
    const rec = this.#nodes.get(ino)!;
    rec.parent = newParent;
    rec.name = newName;
    this.#byName.set(key(newParent, newName), ino);
  }
}

function key(parent: number, name: string): string {
  return `${parent}/${name}`;
}
