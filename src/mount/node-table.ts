/**
 * The kernel's inode numbers (FUSE node ids) and the names they stand for.
 *
 * The kernel names every node by an id we hand out in a lookup reply, and holds it until
 * it forgets as many lookups as we answered. A node has one or more names (parent,
 * name): more than one for a file with hard links, which must keep one id so the kernel
 * sees one inode. Its path is walked up from its first name, so a rename moves a whole
 * subtree by changing one record. Ids are never reused while the kernel may hold them.
 * Id 1 is the root, as FUSE requires. Names are byte strings.
 */
export const ROOT_INO = 1;

interface Name {
  parent: number;
  name: string;
}

interface NodeRecord {
  /** Linked names, first one used for the path; empty once unlinked everywhere. */
  names: Name[];
  /** Lookups answered minus lookups forgotten: the kernel's references. */
  lookups: number;
}

export class NodeTable {
  readonly #nodes = new Map<number, NodeRecord>([[ROOT_INO, { names: [{ parent: ROOT_INO, name: '' }], lookups: 1 }]]);
  /** `${parent}/${name}` -> id, for linked names. */
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
      const first = this.#nodes.get(at)?.names[0];
      if (first === undefined) return undefined;
      parts.push(first.name);
      at = first.parent;
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

  /**
   * Answers a lookup of (parent, name): its id, counted as one more kernel reference.
   * `sameAs`: a node the kernel holds that is the same inode (another hard link of it);
   * the name then joins that node.
   */
  remember(parent: number, name: string, sameAs?: number): number {
    const k = key(parent, name);
    let ino = this.#byName.get(k);
    if (ino !== undefined && sameAs !== undefined && ino !== sameAs && this.#nodes.has(sameAs)) {
      this.unlinked(parent, name); // the name now names another inode
      ino = undefined;
    }
    if (ino === undefined) {
      const rec = sameAs === undefined ? undefined : this.#nodes.get(sameAs);
      if (rec !== undefined) {
        ino = sameAs!;
        rec.names.push({ parent, name });
      } else {
        ino = this.#nextIno++;
        this.#nodes.set(ino, { names: [{ parent, name }], lookups: 0 });
      }
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
    for (const nm of rec.names) this.#byName.delete(key(nm.parent, nm.name));
    return true;
  }

  /** (parent, name) is gone: a node the kernel still holds keeps its id and its other names. */
  unlinked(parent: number, name: string): void {
    const k = key(parent, name);
    const ino = this.#byName.get(k);
    if (ino === undefined) return;
    this.#byName.delete(k);
    const rec = this.#nodes.get(ino)!;
    rec.names = rec.names.filter((nm) => nm.parent !== parent || nm.name !== name);
  }

  /** A rename: whatever was at the destination is unlinked, the source moves there. */
  moved(parent: number, name: string, newParent: number, newName: string): void {
    this.unlinked(newParent, newName);
    const k = key(parent, name);
    const ino = this.#byName.get(k);
    if (ino === undefined) return;
    this.#byName.delete(k);
    const nm = this.#nodes.get(ino)!.names.find((x) => x.parent === parent && x.name === name)!;
    nm.parent = newParent;
    nm.name = newName;
    this.#byName.set(key(newParent, newName), ino);
  }

  /** RENAME_EXCHANGE: the two names swap the nodes they stand for. */
  exchanged(parent: number, name: string, newParent: number, newName: string): void {
    const a = this.#byName.get(key(parent, name));
    const b = this.#byName.get(key(newParent, newName));
    this.unlinked(parent, name);
    this.unlinked(newParent, newName);
    for (const [ino, p, n] of [[a, newParent, newName], [b, parent, name]] as const) {
      if (ino === undefined) continue;
      this.#nodes.get(ino)!.names.push({ parent: p, name: n });
      this.#byName.set(key(p, n), ino);
    }
  }
}

function key(parent: number, name: string): string {
  return `${parent}/${name}`;
}
