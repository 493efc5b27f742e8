/**
 * A runnable example: a gateway whose request workers (a piscina pool) all serve from one
 * cmkit cache. The main thread owns the cache and the server connection; each worker
 * attaches to the cache from its descriptor on its first request.
 *
 *   npm install && node dist/examples/piscina-gateway.js
 */
import { isMainThread } from 'node:worker_threads';

import { Piscina } from 'piscina';

import { CacheManager, Fid, MemoryFileServer } from '../src/index.js';
import type { CacheDescriptor, FidFields } from '../src/index.js';

interface Request {
  readonly cache: CacheDescriptor;
  readonly op: 'read' | 'write';
  readonly fid: FidFields;
  readonly offset: number;
  readonly length: number;
}

let cache: CacheManager | undefined;

/** The request worker: what a FUSE or SMB handler would run per request. */
export default async function handle(req: Request): Promise<string> {
  cache ??= CacheManager.attach(req.cache);
  const fid = Fid.from(req.fid);
  if (req.op === 'write') {
    await cache.write(fid, req.offset, new TextEncoder().encode(`written at ${req.offset}\n`));
    return 'ok';
  }
  return new TextDecoder().decode(await cache.read(fid, req.offset, req.length));
}

async function main(): Promise<void> {
  const server = new MemoryFileServer({ rpcLatencyMs: 1 });
  const fid = new Fid(1, 536870915, 2, 1);
  server.createFile(fid, new TextEncoder().encode('hello from the file server\n'.repeat(1000)));
  const cm = CacheManager.create(server.connect(), { cacheSize: 8 * 1024 * 1024 });
  // atomics: 'async' keeps each worker's event loop running between requests, so the
  // readahead a request started can finish (with 'sync', an idle worker sleeps in
  // Atomics.wait and other workers would wait on its half-fetched buffers).
  const pool = new Piscina({ filename: __filename, maxThreads: 4, idleTimeout: 1000, atomics: 'async' });
  const base = { cache: cm.descriptor, fid: fid.toJSON() };

  await Promise.all([0, 4096, 8192].map((offset) => pool.run({ ...base, op: 'write', offset, length: 0 })));
  const replies = await Promise.all([0, 4096, 8192].map((offset) => pool.run({ ...base, op: 'read', offset, length: 30 })));
  console.log(replies.map((r: string) => JSON.stringify(r)).join('\n'));

  await cm.flush(fid); // stores only the bytes written: three short ranges
  console.log('server RPCs:', server.counters);
  console.log('cache stats:', cm.stats());
  await pool.destroy();
  await cm.close();
}

if (isMainThread) void main();
