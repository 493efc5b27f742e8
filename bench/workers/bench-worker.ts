/**
 * The piscina worker behind the multi-thread rows (B2, B8). Every task waits at a
 * barrier in shared memory so that all workers of one measurement start together, and
 * returns its own elapsed time.
 */
import type { MessagePort } from 'node:worker_threads';

import { CacheManager, Fid, RefTable } from '../../src/index.js';
import type { CacheDescriptor, FidFields, RefTableDescriptor } from '../../src/index.js';

export type BenchTask =
  | {
      readonly kind: 'refTable';
      readonly table: RefTableDescriptor;
      readonly fids: readonly FidFields[];
      readonly ops: number;
      /** 'exclusive': the count change under the table's exclusive lock (pre-2008). */
      readonly mode: 'shared' | 'exclusive';
      readonly barrier: Int32Array;
      readonly parties: number;
    }
  | {
      readonly kind: 'postMessage';
      readonly port: MessagePort;
      readonly ops: number;
    }
  | {
      readonly kind: 'cachedRead';
      readonly cache: CacheDescriptor;
      readonly fid: FidFields;
      readonly fileLength: number;
      readonly readSize: number;
      readonly ops: number;
      readonly barrier: Int32Array;
      readonly parties: number;
      /** Count bytes copied by TypedArray.prototype.set instead of timing. */
      readonly countCopies: boolean;
    };

export interface BenchResult {
  readonly ms: number;
  readonly bytesCopied?: number;
}

const tables = new Map<number, RefTable>();
const caches = new Map<string, CacheManager>();

function barrier(words: Int32Array, parties: number): void {
  Atomics.add(words, 0, 1);
  while (Atomics.load(words, 0) < parties) Atomics.wait(words, 0, Atomics.load(words, 0), 5);
}

export default async function run(task: BenchTask): Promise<BenchResult> {
  switch (task.kind) {
    case 'refTable': {
      let table = tables.get(task.table.id);
      if (table === undefined) {
        table = RefTable.attach(task.table);
        tables.set(task.table.id, table);
      }
      const fids = task.fids.map((f) => Fid.from(f));
      const mask = fids.length - 1;
      barrier(task.barrier, task.parties);
      const t0 = performance.now();
      if (task.mode === 'shared') {
        for (let i = 0; i < task.ops; i++) table.release(table.findHold(fids[i & mask]!));
      } else {
        for (let i = 0; i < task.ops; i++) table.release(table.findHoldExclusive(fids[i & mask]!));
      }
      return { ms: performance.now() - t0 };
    }
    case 'postMessage': {
      const port = task.port;
      const t0 = performance.now();
      for (let i = 0; i < task.ops; i++) {
        await new Promise<void>((resolve) => {
          port.once('message', () => resolve());
          port.postMessage(i);
        });
      }
      port.close();
      return { ms: performance.now() - t0 };
    }
    case 'cachedRead': {
      let cm = caches.get(task.cache.serverChannel);
      if (cm === undefined) {
        cm = CacheManager.attach(task.cache);
        caches.set(task.cache.serverChannel, cm);
      }
      const fid = Fid.from(task.fid);
      const into = new Uint8Array(task.readSize);
      const span = task.fileLength - task.readSize;
      const original = Uint8Array.prototype.set;
      let bytesCopied = 0;
      if (task.countCopies) {
        Uint8Array.prototype.set = function (this: Uint8Array, src: ArrayLike<number>, offset?: number) {
          bytesCopied += src.length;
          return original.call(this, src, offset);
        } as typeof original;
      }
      barrier(task.barrier, task.parties);
      const t0 = performance.now();
      try {
        for (let i = 0; i < task.ops; i++) {
          const offset = ((i * 7919 * task.readSize) % (span + 1)) & ~4095;
          await cm.readInto(fid, offset, into);
        }
      } finally {
        Uint8Array.prototype.set = original;
      }
      return { ms: performance.now() - t0, bytesCopied };
    }
  }
}
