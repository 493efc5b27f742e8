import { randomFillSync } from 'node:crypto';
import { closeSync, openSync, readSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { median } from '../measure.js';
import { compareRow, withPeers } from '../peers/peer-row.js';
import type { Row, RowContext } from '../row.js';

const MiB = 1024 * 1024;
const PAGE = 4096;

/** Reads per second of 4 KiB preads at `offsets`, on one open file. */
function iops(file: string, offsets: readonly number[]): number {
  const buf = Buffer.allocUnsafe(PAGE);
  const fd = openSync(file, 'r');
  try {
    const t0 = performance.now();
    for (const at of offsets) {
      if (readSync(fd, buf, 0, PAGE, at) !== PAGE) throw new Error(`${file}: short read at ${at}`);
    }
    return offsets.length / ((performance.now() - t0) / 1000);
  } finally {
    closeSync(fd);
  }
}

/**
 * M2: random 4 KiB preads in a 256 MiB file over the SFTP remote (1 ms each way): cold (a
 * fresh mount, every offset new) and warm (the same offsets again, median of three passes),
 * in reads per second.
 */
export async function m2(ctx: RowContext): Promise<Row[] | undefined> {
  return withPeers(ctx, 'M2', async (run) => {
    const size = (ctx.quick ? 64 : 256) * MiB;
    const data = Buffer.allocUnsafe(size);
    randomFillSync(data);
    writeFileSync(path.join(run.remoteDir, 'file'), data);
    // Distinct pages from a fixed sequence, so every target reads the same ones.
    const pages = size / PAGE;
    const offsets: number[] = [];
    const seen = new Set<number>();
    for (let x = 12345; offsets.length < (ctx.quick ? 300 : 1000); ) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      const page = x % pages;
      if (!seen.has(page)) {
        seen.add(page);
        offsets.push(page * PAGE);
      }
    }
    const r = await run.onEachTarget(['--cache-size', '1G'], async (dir) => {
      const file = path.join(dir, 'file');
      const cold = iops(file, offsets);
      const warm = median([0, 1, 2].map(() => iops(file, offsets)));
      return { cold, warm };
    });
    const what = `Random 4 KiB reads in ${size >> 20} MiB over SFTP, 1 ms each way`;
    return [
      compareRow(r, 'cold', { id: 'M2 cold', name: `${what}, cold`, metric: 'reads/s', unit: 'IOPS', higherIsBetter: true }),
      compareRow(r, 'warm', { id: 'M2 warm', name: `${what}, warm`, metric: 'reads/s', unit: 'IOPS', higherIsBetter: true }),
    ];
  });
}
