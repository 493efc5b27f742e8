#!/usr/bin/env node
/**
 * cmkit's command line:
 *   cmkit mount <backing-dir> <mountpoint> [--cache-size <bytes>] [--block-size <bytes>]
 *               [--chunk-size <bytes>] [--workers <n>] [--latency-ms <ms>] [--bandwidth <bytes/s>] [--no-cache] [--no-reader-hits]
 *               [--salvage-dir <dir>] [--cache-dir <dir>] [--names-timeout <s>]
 *   cmkit stats <mountpoint>
 * A mount serves its stats on a control socket (./control.ts), which `cmkit stats` reads.
 * A mount runs in the foreground until SIGINT or SIGTERM (or an outside umount), then
 * unmounts and stores every acknowledged write. A store the server refuses for good (the
 * file is gone, EFBIG, EACCES) is salvaged: its bytes go to --salvage-dir. If the server
 * fails for a while (full, busy, read-only), it keeps the data and retries every second
 * until a second signal gives it up: the rest is salvaged too (exit 1). Sizes take a K, M
 * or G suffix (powers of 1024). With --cache-dir the cache lives in <dir>/cache, a file
 * that may be far larger than memory and that the next mount starts from (a mount that
 * was killed loses no acknowledged write: the next one stores it before it mounts).
 * --names-timeout: seconds the mount keeps names and attributes (default 10; 0: ask the
 * server each time), so a change made outside the mount shows within that time.
 */
// First, before any module that takes time to load: see ./stop-signals.ts.
import { stopSignals } from './stop-signals.js';
// Second, before anything uses libuv's thread pool: see ./thread-pool.ts.
import './thread-pool.js';

import { mkdirSync } from 'node:fs';
import { constants } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import type { CacheManagerOptions } from '../cache/cache-manager.js';
import { DirectoryFileServer } from '../server/directory-file-server.js';
import { CacheMount } from './cache-mount.js';
import { queryControl, serveControl } from './control.js';

const USAGE = `usage:
  cmkit --help
  cmkit mount <backing-dir> <mountpoint> [--cache-size <bytes>] [--block-size <bytes>]
              [--chunk-size <bytes>] [--workers <n>] [--latency-ms <ms>] [--bandwidth <bytes/s>] [--no-cache] [--no-reader-hits]
              [--salvage-dir <dir>] [--cache-dir <dir>] [--names-timeout <s>]
  cmkit stats <mountpoint>`;

class UsageError extends Error {}

function parseSize(text: string, flag: string): number {
  const m = /^(\d+)([KMG]?)i?B?$/i.exec(text);
  if (m === null) throw new UsageError(`${flag} wants a size such as 268435456 or 256M, not '${text}'`);
  const scale = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Number(m[1]) * scale;
}

function parseNonNegative(text: string, flag: string, what: string): number {
  const n = Number(text);
  if (!(n >= 0) || n === Infinity) throw new UsageError(`${flag} wants ${what}`);
  return n;
}

interface MountArgs {
  backing: string;
  mountpoint: string;
  cache: CacheManagerOptions;
  latencyMs: number;
  bandwidth: number;
  caching: boolean;
  readerHits: boolean;
  workers: number;
  namesTimeoutS: number | undefined;
}

function parseMount(args: string[]): MountArgs {
  const positional: string[] = [];
  const cache: { cacheSize?: number; blockSize?: number; chunkSize?: number; salvageDir?: string; cacheFile?: string } = {};
  let latencyMs = 0;
  let bandwidth = 0;
  let caching = true;
  let readerHits = true;
  let workers = 2;
  let namesTimeoutS: number | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = (): string => {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    if (a === '--cache-size') cache.cacheSize = parseSize(value(), a);
    else if (a === '--block-size') cache.blockSize = parseSize(value(), a);
    else if (a === '--chunk-size') cache.chunkSize = parseSize(value(), a);
    else if (a === '--salvage-dir') cache.salvageDir = path.resolve(value());
    else if (a === '--cache-dir') cache.cacheFile = path.join(path.resolve(value()), 'cache');
    else if (a === '--latency-ms') {
      latencyMs = parseNonNegative(value(), a, 'a number >= 0');
    } else if (a === '--names-timeout') {
      namesTimeoutS = parseNonNegative(value(), a, 'a number of seconds >= 0');
    } else if (a === '--bandwidth') bandwidth = parseSize(value(), a);
    else if (a === '--workers') {
      workers = Number(value());
      if (!Number.isInteger(workers) || workers < 0 || workers > 64) throw new UsageError('--workers wants an integer from 0 to 64');
    } else if (a === '--no-cache') caching = false;
    else if (a === '--no-reader-hits') readerHits = false;
    else if (a.startsWith('--')) throw new UsageError(`unknown option ${a}`);
    else positional.push(a);
  }
  if (positional.length !== 2) throw new UsageError('mount needs <backing-dir> and <mountpoint>');
  return { backing: positional[0]!, mountpoint: positional[1]!, cache, latencyMs, bandwidth, caching, readerHits, workers, namesTimeoutS };
}

async function mount(args: string[]): Promise<number> {
  const o = parseMount(args);
  const server = new DirectoryFileServer(o.backing, { rpcLatencyMs: o.latencyMs, bandwidth: o.bandwidth });
  if (o.cache.cacheFile !== undefined) mkdirSync(path.dirname(o.cache.cacheFile), { recursive: true, mode: 0o700 });
  if (stopSignals.count > 0) {
    console.log(`cmkit: ${stopSignals.first} before the mount: not mounting`);
    return 0;
  }
  const m = await CacheMount.mount(server, path.resolve(o.mountpoint), {
    caching: o.caching,
    cache: o.cache,
    workers: o.workers,
    readerHits: o.readerHits,
    ...(o.namesTimeoutS !== undefined ? { namesTimeoutS: o.namesTimeoutS } : {}),
  });
  let unmounting = false;
  const onSignal = (signal: string): void => {
    if (unmounting) return;
    unmounting = true;
    console.log(`cmkit: ${signal}: unmounting, then storing every acknowledged write`);
    void m.unmount().catch(() => {});
  };
  stopSignals.handler = onSignal;
  let control: Awaited<ReturnType<typeof serveControl>> | undefined;
  if (stopSignals.count > 0) {
    onSignal(`${stopSignals.first} while mounting`);
  } else {
    control = await serveControl(o.mountpoint, () => m.stats());
    const r = m.cache?.restored;
    if (r !== undefined) {
      console.log(`cmkit: cache file ${o.cache.cacheFile}: found ${r.vnodes} files, ${r.cleanBuffers} clean blocks to check at first use, ` +
        `${r.dirtyBuffers} unstored blocks of ${r.dirtyFids.length} files (stored before mounting); ${r.dropped} records dropped`);
    }
    console.log(`cmkit: mounted ${path.resolve(o.backing)} at ${path.resolve(o.mountpoint)}${o.caching ? '' : ' (no cache)'}`);
  }
  await m.ended;
  await control?.close();
  try {
    await m.unmount();
  } catch (e) {
    // A failing server loses no written data: keep the data and keep trying, until the
    // server takes it or the operator signals again to give it up.
    console.error(`cmkit: the server refused the final stores (${(e as Error).message}); retrying every second, signal again to give up`);
    const given = stopSignals.count;
    for (;;) {
      await sleep(1000);
      if (stopSignals.count > given) {
        const files = await m.cache!.salvageDirty(constants.errno.ECANCELED, 'given up at unmount');
        console.error(`cmkit: gave up; what the server did not take (${files} files) is in ${m.cache!.descriptor.salvageDir}`);
        return 1;
      }
      try {
        await m.cache!.close();
        break;
      } catch {
        // still refused
      }
    }
  }
  const s = m.stats();
  console.log(`cmkit: unmounted; server fetched ${s.server.bytesFetched} bytes and stored ${s.server.bytesStored}`);
  return 0;
}

async function stats(args: string[]): Promise<number> {
  if (args.length !== 1) throw new UsageError('stats needs <mountpoint>');
  process.stdout.write(await queryControl(args[0]!));
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === '--help' || command === 'help') {
    console.log(USAGE);
    return 0;
  }
  try {
    if (command === 'mount') return await mount(rest);
    if (command === 'stats') return await stats(rest);
    throw new UsageError(command === undefined ? 'no command' : `unknown command '${command}'`);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`cmkit: ${e.message}\n${USAGE}`);
      return 2;
    }
    console.error(`cmkit: ${(e as Error).message}`);
    return 1;
  }
}

void main(process.argv.slice(2)).then((code) => process.exit(code));
