/**
 * The project's randomized read/write/truncate exerciser (after fsx): random operations
 * on a few files, each checked against an in-memory model of what the file must hold.
 * The target decides how an operation is done: through the cache's API
 * (test/cache-fsx.test.ts) or through a FUSE mount with plain system calls
 * (test/mount-fuse.test.ts).
 */
import assert from 'node:assert/strict';

import { firstDifference } from './files.js';

/** Each call resolves to how many attempts failed (server faults) before one succeeded. */
export interface FsxTarget {
  read(k: number, offset: number, length: number): Promise<{ bytes: Uint8Array; failures: number }>;
  write(k: number, offset: number, data: Uint8Array): Promise<number>;
  truncate(k: number, length: number): Promise<number>;
  /** Stores file k; afterwards serverContents(k) must equal the model. */
  flush(k: number): Promise<number>;
  /** Drops what the client caches of file k. */
  evict(k: number): Promise<number>;
  serverContents(k: number): Promise<Uint8Array>;
  /** Another client writes to file k (after a flush of ours, so the outcome is defined). */
  secondClient(k: number, offset: number, data: Uint8Array): Promise<number>;
  /** What the target can tell of file k when a check fails. */
  describe?(k: number): Promise<string>;
  /**
   * Flushes file k while the server refuses its stores for good; resolves to whether a
   * store was refused (its unstored changes are then gone: the file is what the server
   * holds). Targets without it run plain flushes instead.
   */
  refusedFlush?(k: number): Promise<boolean>;
  /** Flushes file k while the server fails for a while (transiently): nothing is lost. */
  failingFlush?(k: number): Promise<void>;
}

export interface FsxRun {
  readonly ops: number;
  /** Sizes straddle these, and reads and writes reach across them. */
  readonly block: number;
  readonly chunk: number;
  /** The files' first contents (already on the server). */
  readonly initial: Uint8Array[];
  readonly target: FsxTarget;
  readonly next: () => number;
  readonly seed: number;
  /** Called before each round (one operation on every file): fault injection. */
  readonly beforeRound?: () => void;
}

/** Runs the exerciser; throws on the first wrong byte, naming the seed and operation. */
export async function runFsx(run: FsxRun): Promise<{ counts: Record<string, number>; failures: number }> {
  const { block: BLOCK, chunk: CHUNK, target, next, seed } = run;
  const rand = (n: number): number => next() % n;
  const bytes = (n: number): Uint8Array => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = next() & 0xff;
    return out;
  };
  const models: Uint8Array[] = run.initial.map((b) => b.slice());
  const nextRead = models.map(() => 0);
  const counts: Record<string, number> = {};
  let failures = 0;
  const count = (what: string): void => {
    counts[what] = (counts[what] ?? 0) + 1;
  };
  const grow = (model: Uint8Array, offset: number, data: Uint8Array): Uint8Array => {
    const grown = new Uint8Array(Math.max(model.length, offset + data.length));
    grown.set(model);
    grown.set(data, offset);
    return grown;
  };

  /** One step on file k: an operation, the model's update, and the check of a read. */
  const stepOn = async (k: number, op: number): Promise<void> => {
    const model = models[k]!;
    const size = model.length;
    const where = `seed ${seed}, op ${op}, file ${k}`;
    const kind = rand(100);
    if (kind < 40) {
      const offset = rand(2) === 0 ? Math.min(nextRead[k]!, size) : rand(size + BLOCK);
      const length = rand(3 * CHUNK);
      nextRead[k] = offset + length;
      const r = await target.read(k, offset, length);
      failures += r.failures;
      const want = model.subarray(offset, offset + length);
      const d = firstDifference(r.bytes, want);
      if (d !== -1) {
        const seen = (await target.describe?.(k)) ?? '';
        assert.equal(r.bytes.length, want.length, `${where}: read length at ${offset} (model size ${size}) ${seen}`);
        assert.equal(d, -1, `${where}: wrong byte at ${offset + d} ${seen}`);
      }
      count('read');
    } else if (kind < 70) {
      const offset = rand(size + CHUNK);
      const data = bytes(rand(2 * CHUNK) + 1);
      failures += await target.write(k, offset, data);
      models[k] = grow(model, offset, data);
      count('write');
    } else if (kind < 78) {
      const length = rand(size + CHUNK);
      failures += await target.truncate(k, length);
      const resized = new Uint8Array(length);
      resized.set(model.subarray(0, Math.min(length, size)));
      models[k] = resized;
      count('truncate');
    } else if (kind < 86) {
      const special = rand(8);
      if (target.failingFlush !== undefined && special === 1) {
        await target.failingFlush(k);
        count('failing flush');
      } else if (target.refusedFlush !== undefined && special === 0) {
        // The model is told: a refused store leaves the file as the server has it.
        if (await target.refusedFlush(k)) {
          models[k] = await target.serverContents(k);
          count('refused flush');
        } else {
          assert.equal(firstDifference(await target.serverContents(k), model), -1, `${where}: server after a flush with nothing to refuse`);
          count('flush');
        }
      } else {
        failures += await target.flush(k);
        assert.equal(firstDifference(await target.serverContents(k), model), -1, `${where}: server after flush`);
        count('flush');
      }
    } else if (kind < 93) {
      failures += await target.evict(k);
      count('evict');
    } else {
      failures += await target.flush(k);
      const offset = rand(size + BLOCK);
      const data = bytes(rand(CHUNK) + 1);
      failures += await target.secondClient(k, offset, data);
      models[k] = grow(models[k]!, offset, data);
      count('second client');
    }
  };

  let op = 0;
  while (op < run.ops) {
    run.beforeRound?.();
    // One operation on every file at once.
    await Promise.all(models.map((_, k) => stepOn(k, op + k)));
    op += models.length;
  }
  for (let k = 0; k < models.length; k++) {
    failures += await target.flush(k);
    assert.equal(firstDifference(await target.serverContents(k), models[k]!), -1, `seed ${seed}: final contents of file ${k}`);
  }
  return { counts, failures };
}
