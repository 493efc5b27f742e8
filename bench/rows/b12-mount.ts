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
 * B12: sequential reads of a big file through `cmkit mount` over a backing directory with
 * 1 ms injected latency per RPC, each read a new open: cold (a fresh mount: the cache
 * fetches, with readahead) and warm (as the mount runs: the kernel keeps its pages
 * across opens while the file is unchanged, see src/mount/cache-mount.ts), against the
 * same mount with caching off (every 128 KiB kernel read is one RPC). Also shown: warm
 * with O_DIRECT, where every byte comes from the cmkit cache and none from the kernel's.
 */
export const b12: RowFn = async (ctx) => {
  const why = fuseUnavailable();
  if (why !== undefined) {
    ctx.progress(`B12 skipped: ${why}`);
    return undefined;
  }
  const size = (ctx.quick ? 64 : 256) * MiB;
  const base = mkdtempSync(path.join(os.tmpdir(), 'cmkit-b12-'));
  const backing = path.join(base, 'backing');
  const mnt = path.join(base, 'mnt');
  mkdirSync(backing);
  mkdirSync(mnt);
  try {
    const data = Buffer.allocUnsafe(size);
    randomFillSync(data);
    writeFileSync(path.join(backing, 'file'), data);
    const floor = median([0, 1, 2].map(() => readRate(path.join(backing, 'file'), size)));

    ctx.progress(`B12: ${size >> 20} MiB through the mount with caching off`);
    const uncached: number[] = [];
    let cli = await mountCli(backing, mnt, ['--no-cache', '--latency-ms', '1']);
    try {
      for (let i = 0; i < 2; i++) uncached.push(readRate(path.join(mnt, 'file'), size));
    } finally {
      await unmountCli(cli, mnt);
    }

    const cold: number[] = [];
    const warm: number[] = [];
    const warmDirect: number[] = [];
    for (let rep = 0; rep < 3; rep++) {
      ctx.progress(`B12: cold and warm reads through the cache, run ${rep + 1} of 3`);
      cli = await mountCli(backing, mnt, ['--latency-ms', '1', '--cache-size', `${(size >> 20) + 64}M`]);
      try {
        cold.push(readRate(path.join(mnt, 'file'), size));
        for (let i = 0; i < 2; i++) warm.push(readRate(path.join(mnt, 'file'), size));
        warmDirect.push(readRate(path.join(mnt, 'file'), size, true));
      } finally {
        await unmountCli(cli, mnt);
      }
    }
    const base0 = median(uncached);
    const warmRatio = median(warm) / base0;
    const coldRatio = median(cold) / base0;
    return {
      id: 'B12',
      name: `Sequential read of ${size >> 20} MiB through cmkit mount, 1 ms RPC latency`,
      metric: 'MiB/s warm',
      unit: 'MiB/s',
      value: round(median(warm) / MiB),
      baseline: round(base0 / MiB),
      peer: null,
      floor: round(floor / MiB),
      ratio: round(warmRatio),
      goal: 'warm >= 20x the mount with caching off, cold >= 3x',
      met: warmRatio >= 20 && coldRatio >= 3,
      extra: {
        'MiB/s cold': round(median(cold) / MiB),
        'cold / caching off': round(coldRatio),
        'MiB/s warm with O_DIRECT (cmkit cache only)': round(median(warmDirect) / MiB),
      },
    };
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
};
