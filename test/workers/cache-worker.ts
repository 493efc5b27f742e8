/**
 * A piscina worker for test/cache-sharing.test.ts: attaches to the main thread's cache
 * once, then writes its own interleaved records or reads whole files back.
 */
import { CacheManager, Fid } from '../../src/index.js';
import type { CacheDescriptor, FidFields } from '../../src/index.js';

export interface CacheTask {
  readonly cache: CacheDescriptor;
  readonly phase: 'write' | 'read';
  readonly fids: readonly FidFields[];
  readonly worker: number;
  readonly workers: number;
  readonly record: number;
  readonly records: number;
}

let attached: { channel: string; cm: CacheManager } | undefined;

/** The byte worker w writes at position i of its record r: the model the test checks. */
export function recordByte(worker: number, file: number, record: number, i: number): number {
  return (worker * 31 + file * 7 + record * 13 + i) & 0xff;
}

export default async function run(task: CacheTask): Promise<number> {
  if (attached?.channel !== task.cache.serverChannel) {
    attached = { channel: task.cache.serverChannel, cm: CacheManager.attach(task.cache) };
  }
  const cm = attached.cm;
  const fids = task.fids.map((f) => Fid.from(f));
  if (task.phase === 'write') {
    let written = 0;
    for (let r = task.worker; r < task.records; r += task.workers) {
      for (const [k, fid] of fids.entries()) {
        const data = new Uint8Array(task.record).map((_, i) => recordByte(task.worker, k, r, i));
        await cm.write(fid, r * task.record, data);
        written += data.length;
      }
    }
    return written;
  }
  let checked = 0;
  for (const [k, fid] of fids.entries()) {
    const got = await cm.read(fid, 0, task.record * task.records);
    for (let r = 0; r < task.records; r++) {
      for (let i = 0; i < task.record; i++) {
        const want = recordByte(r % task.workers, k, r, i);
        if (got[r * task.record + i] !== want) {
          throw new Error(`worker ${task.worker}: file ${k} byte ${r * task.record + i} is ${got[r * task.record + i]}, want ${want}`);
        }
        checked++;
      }
    }
  }
  return checked;
}
