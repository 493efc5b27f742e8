/**
 * The piscina worker of test/cache-fsx.test.ts: runs one operation on the shared cache,
 * retrying it while the server fails (every operation here is idempotent), and returns
 * what a read returned.
 */
import { CacheManager, Fid } from '../../src/index.js';
import type { CacheDescriptor, FidFields } from '../../src/index.js';

export type FsxOp =
  | { readonly op: 'read'; readonly offset: number; readonly length: number }
  | { readonly op: 'write'; readonly offset: number; readonly data: Uint8Array }
  | { readonly op: 'truncate'; readonly length: number }
  | { readonly op: 'flush' }
  | { readonly op: 'evict' };

export interface FsxTask {
  readonly cache: CacheDescriptor;
  readonly fid: FidFields;
  readonly step: FsxOp;
}

export interface FsxResult {
  readonly bytes?: Uint8Array;
  /** How many attempts failed with a server error before one succeeded. */
  readonly failures: number;
}

const MAX_ATTEMPTS = 200;
let attached: { channel: string; cm: CacheManager } | undefined;

export default async function run(task: FsxTask): Promise<FsxResult> {
  if (attached?.channel !== task.cache.serverChannel) {
    attached = { channel: task.cache.serverChannel, cm: CacheManager.attach(task.cache) };
  }
  const cm = attached.cm;
  const fid = Fid.from(task.fid);
  const s = task.step;
  for (let failures = 0; ; failures++) {
    try {
      switch (s.op) {
        case 'read':
          return { bytes: await cm.read(fid, s.offset, s.length), failures };
        case 'write':
          await cm.write(fid, s.offset, s.data);
          return { failures };
        case 'truncate':
          await cm.truncate(fid, s.length);
          return { failures };
        case 'flush':
          await cm.flush(fid);
          return { failures };
        case 'evict':
          await cm.evict(fid);
          return { failures };
      }
    } catch (e) {
      const code = (e as { code?: string }).code ?? '';
      const retriable = code.startsWith('ERR_CMKIT_SERVER_') || code === 'ERR_CMKIT_TABLE_FULL';
      if (!retriable || failures >= MAX_ATTEMPTS) throw e;
    }
  }
}
