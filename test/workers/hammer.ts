/**
 * A piscina worker for test/core-sharing.test.ts: attaches to the main thread's
 * RefTable and RwLock and hammers them.
 */
import { Fid, RefTable, RwLock } from '../../src/index.js';
import type { FidFields, RefTableDescriptor, RwLockDescriptor } from '../../src/index.js';

export interface HammerTask {
  readonly table: RefTableDescriptor;
  readonly lock: RwLockDescriptor;
  readonly fids: readonly FidFields[];
  /** Per-slot hold counters, bumped while the entry is held. */
  readonly holdsBySlot: Int32Array;
  /** [0]: a counter changed only under the write lock, by a non-atomic read-modify-write. */
  readonly guarded: Int32Array;
  readonly pairs: number;
  readonly lockRounds: number;
}

const tables = new Map<number, RefTable>();

export default function hammer(task: HammerTask): { pairs: number; upgradesWaited: number } {
  let table = tables.get(task.table.id);
  if (table === undefined) {
    table = RefTable.attach(task.table);
    tables.set(task.table.id, table);
  }
  const fids = task.fids.map((f) => Fid.from(f));
  for (let i = 0; i < task.pairs; i++) {
    const fid = fids[i % fids.length]!;
    const slot = table.findHold(fid);
    if (slot < 0) throw new Error(`fid ${fid} not found`);
    Atomics.add(task.holdsBySlot, slot, 1);
    table.release(slot);
  }

  const lock = RwLock.attach(task.lock);
  let upgradesWaited = 0;
  for (let i = 0; i < task.lockRounds; i++) {
    switch (i % 3) {
      case 0:
        lock.write();
        task.guarded[0] = task.guarded[0]! + 1; // plain read-modify-write: exact only if exclusive
        lock.release();
        break;
      case 1:
        lock.read();
        if (lock.upgrade()) upgradesWaited++;
        task.guarded[0] = task.guarded[0]! + 1;
        lock.downgrade();
        lock.release();
        break;
      default:
        lock.read();
        lock.release();
    }
  }
  return { pairs: task.pairs, upgradesWaited };
}
