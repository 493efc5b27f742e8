import { randomFillSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { fuseUnavailable } from '../../src/mount/fuse.js';
import { median, round } from '../measure.js';
import { mountCli, readRate, unmountCli } from '../mount-cli.js';
import type { RowFn } from '../row.js';

const MiB = 1024 * 1024;

/**
 * B14: the first read after a restart, from a cache file (`--cache-dir`): a new mount
 * on the file the last one left checks each block's seal and serves it without a fetch.
 * Against the same read from a cache in memory that is warm (the mount has read the file
 * once), and against a cold cache (a new, empty cache file: every block fetched, with
 * readahead). The backing directory as a remote: 1 ms per RPC and 100 MiB/s, the link
 * of B6; the cold read over 1 ms RPCs alone (a remote as fast as this machine's tmpfs)
 * is shown beside it. O_DIRECT reads, so the kernel's pages serve none of them.
 */
export const b14: RowFn = async (ctx) => {
  const why = fuseUnavailable();
  if (why !== undefined) {
    ctx.progress(`B14 skipped: ${why}`);
    return undefined;
  }
  const size = (ctx.quick ? 64 : 256) * MiB;
  const base = mkdtempSync(path.join(os.tmpdir(), 'cmkit-b14-'));
  const backing = path.join(base, 'backing');
  const mnt = path.join(base, 'mnt');
  const cacheDir = path.join(base, 'cache-dir');
  mkdirSync(backing);
  mkdirSync(mnt);
  const room = ['--cache-size', `${(size >> 20) + 64}M`];
  const common = ['--latency-ms', '1', '--bandwidth', '100M', ...room];
  try {
    const data = Buffer.allocUnsafe(size);
    randomFillSync(data);
    writeFileSync(path.join(backing, 'file'), data);
    const file = path.join(mnt, 'file');
    const cold: number[] = [];
    const restart: number[] = [];
    const memory: number[] = [];
    const coldFastLink: number[] = [];
    for (let rep = 0; rep < 3; rep++) {
      ctx.progress(`B14: cold, after restart and in-memory warm reads, run ${rep + 1} of 3`);
      rmSync(cacheDir, { recursive: true, force: true });
      let cli = await mountCli(backing, mnt, [...common, '--cache-dir', cacheDir]);
      try {
        cold.push(readRate(file, size, true));
      } finally {
        await unmountCli(cli, mnt);
      }
      cli = await mountCli(backing, mnt, [...common, '--cache-dir', cacheDir]);
      try {
        restart.push(readRate(file, size, true));
      } finally {
        await unmountCli(cli, mnt);
      }
      cli = await mountCli(backing, mnt, common);
      try {
        readRate(file, size, true);
        memory.push(readRate(file, size, true));
      } finally {
        await unmountCli(cli, mnt);
      }
      cli = await mountCli(backing, mnt, ['--latency-ms', '1', ...room]);
      try {
        coldFastLink.push(readRate(file, size, true));
      } finally {
        await unmountCli(cli, mnt);
      }
    }
    const vsMemory = median(restart) / median(memory);
    const vsCold = median(restart) / median(cold);
    return {
      id: 'B14',
      name: `First read of ${size >> 20} MiB after a restart, from a cache file, 1 ms RPCs, 100 MiB/s link`,
      metric: 'MiB/s after restart (O_DIRECT)',
      unit: 'MiB/s',
      value: round(median(restart) / MiB),
      baseline: round(median(cold) / MiB),
      peer: null,
      floor: null,
      ratio: round(vsMemory),
      goal: 'after restart >= 0.8x a warm cache in memory, >= 20x a cold cache',
      met: vsMemory >= 0.8 && vsCold >= 20,
      extra: {
        'MiB/s warm in memory': round(median(memory) / MiB),
        'MiB/s cold': round(median(cold) / MiB),
        'after restart / cold': round(vsCold),
        'MiB/s cold, 1 ms RPCs and no bandwidth limit': round(median(coldFastLink) / MiB),
        'after restart / that cold': round(median(restart) / median(coldFastLink)),
      },
    };
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
};
