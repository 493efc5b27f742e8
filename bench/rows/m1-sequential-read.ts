import { randomFillSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import { median } from '../measure.js';
import { readRate } from '../mount-cli.js';
import { compareRow, withPeers } from '../peers/peer-row.js';
import type { Row, RowContext } from '../row.js';

const MiB = 1024 * 1024;

/**
 * M1: sequential read of a 256 MiB file over the SFTP remote (1 ms each way), in 1 MiB
 * read(2)s: cold (first read after a fresh mount) and warm (median of two more reads, each
 * a new open), on cmkit, sshfs and rclone.
 */
export async function m1(ctx: RowContext): Promise<Row[] | undefined> {
  return withPeers(ctx, 'M1', async (run) => {
    const size = (ctx.quick ? 64 : 256) * MiB;
    const data = Buffer.allocUnsafe(size);
    randomFillSync(data);
    writeFileSync(path.join(run.remoteDir, 'file'), data);
    const r = await run.onEachTarget(['--cache-size', '1G'], async (dir) => {
      const file = path.join(dir, 'file');
      const cold = readRate(file, size);
      const warm = median([readRate(file, size), readRate(file, size)]);
      return { cold: cold / MiB, warm: warm / MiB };
    });
    const what = `Sequential read of ${size >> 20} MiB over SFTP, 1 ms each way`;
    return [
      compareRow(r, 'cold', { id: 'M1 cold', name: `${what}, cold`, metric: 'MiB/s', unit: 'MiB/s', higherIsBetter: true }),
      compareRow(r, 'warm', { id: 'M1 warm', name: `${what}, warm`, metric: 'MiB/s', unit: 'MiB/s', higherIsBetter: true }),
    ];
  });
}
