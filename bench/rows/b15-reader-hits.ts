import { randomFillSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { fuseUnavailable } from '../../src/mount/fuse.js';
import { median, round } from '../measure.js';
import { mountCli, readRate, unmountCli } from '../mount-cli.js';
import type { RowFn } from '../row.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * B15: cached reads answered by the FUSE session's reader threads (native/core/read_hit.h)
 * against the same reads sent to a JS thread (`--no-reader-hits`, the design it replaces:
 * a reader thread queues the request, a thread-safe function wakes a JS worker, the
 * reply goes back through native). A warm file read with O_DIRECT, so the kernel's page
 * cache serves none of it and every request reaches the mount, in 128 KiB, 1 MiB and
 * 4 KiB reads (those of an eighth of the size).
 */
export const b15: RowFn = async (ctx) => {
  const why = fuseUnavailable();
  if (why !== undefined) {
    ctx.progress(`B15 skipped: ${why}`);
    return undefined;
  }
  const size = (ctx.quick ? 32 : 128) * MiB;
  const base = mkdtempSync(path.join(os.tmpdir(), 'cmkit-b15-'));
  const backing = path.join(base, 'backing');
  const mnt = path.join(base, 'mnt');
  mkdirSync(backing);
  mkdirSync(mnt);
  const file = path.join(mnt, 'file');
  const small = path.join(mnt, 'small');
  const sizes = [128 * KiB, MiB, 4 * KiB];
  const rates = (): Map<number, number[]> => new Map(sizes.map((s) => [s, []]));
  const hits = rates();
  const js = rates();
  try {
    const data = Buffer.allocUnsafe(size);
    randomFillSync(data);
    writeFileSync(path.join(backing, 'file'), data);
    // 4 KiB reads: an eighth of the file, in a file of its own (readRate reads to the end).
    writeFileSync(path.join(backing, 'small'), data.subarray(0, size / 8));
    for (let rep = 0; rep < 3; rep++) {
      for (const [flags, into] of [[[], hits], [['--no-reader-hits'], js]] as const) {
        ctx.progress(`B15: warm O_DIRECT reads ${flags.length === 0 ? 'by the reader threads' : 'by JS'}, run ${rep + 1} of 3`);
        const cli = await mountCli(backing, mnt, ['--cache-size', `${(size >> 20) + 64}M`, ...flags]);
        try {
          readRate(file, size, true); // cold: fills the cache
          readRate(small, size / 8, true);
          for (const s of sizes) into.get(s)!.push(s === 4 * KiB ? readRate(small, size / 8, true, s) : readRate(file, size, true, s));
        } finally {
          await unmountCli(cli, mnt);
        }
      }
    }
    const m = (r: Map<number, number[]>, s: number): number => median(r.get(s)!) / MiB;
    const ratio = (s: number): number => m(hits, s) / m(js, s);
    return {
      id: 'B15',
      name: `Warm O_DIRECT reads of ${size >> 20} MiB through cmkit mount, served by the reader threads vs by JS`,
      metric: 'MiB/s, 128 KiB reads, reader hits',
      unit: 'MiB/s',
      value: round(m(hits, 128 * KiB)),
      baseline: round(m(js, 128 * KiB)),
      peer: null,
      floor: null,
      ratio: round(ratio(128 * KiB)),
      goal: 'reader hits >= 3x the JS path for 128 KiB O_DIRECT reads',
      met: ratio(128 * KiB) >= 3,
      extra: {
        'MiB/s, 1 MiB reads, reader hits': round(m(hits, MiB)),
        'MiB/s, 1 MiB reads, JS': round(m(js, MiB)),
        'ratio, 1 MiB reads': round(ratio(MiB)),
        'MiB/s, 4 KiB reads, reader hits': round(m(hits, 4 * KiB)),
        'MiB/s, 4 KiB reads, JS': round(m(js, 4 * KiB)),
        'ratio, 4 KiB reads': round(ratio(4 * KiB)),
      },
    };
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
};
