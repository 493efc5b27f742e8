import { execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { compareRow, withPeers } from '../peers/peer-row.js';
import type { Row, RowContext } from '../row.js';

const MiB = 1024 * 1024;

function seconds(job: () => void): number {
  const t0 = performance.now();
  job();
  return (performance.now() - t0) / 1000;
}

/**
 * Seconds from `since` until the remote's `file` holds exactly `data` (a caching peer may
 * acknowledge a close before it has stored anything); polled every 50 ms, up to `limitS`.
 */
async function remoteHasIt(file: string, data: Buffer, since: number, limitS: number): Promise<number> {
  for (;;) {
    try {
      if (statSync(file).size === data.length && readFileSync(file).equals(data)) break;
    } catch {
      // not there yet
    }
    if ((performance.now() - since) / 1000 > limitS) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return (performance.now() - since) / 1000;
}

/**
 * M3: `cp` of a 64 MiB file onto the SFTP remote (1 ms each way): as a new file, and over an
 * existing file of the same size (O_TRUNC, then the writes). The time is cp's, through its
 * close; also shown: when the remote had every byte.
 */
export async function m3(ctx: RowContext): Promise<Row[] | undefined> {
  return withPeers(ctx, 'M3', async (run) => {
    const size = (ctx.quick ? 16 : 64) * MiB;
    const source = Buffer.allocUnsafe(size);
    randomFillSync(source);
    const sourceFile = path.join(run.scratch, 'source');
    writeFileSync(sourceFile, source);
    const old = Buffer.allocUnsafe(size);
    randomFillSync(old);
    const limitS = ctx.quick ? 30 : 120;
    const r = await run.onEachTarget(
      ['--cache-size', '1G'],
      async (dir) => {
        let t0 = performance.now();
        const fresh = seconds(() => execFileSync('cp', [sourceFile, path.join(dir, 'new')]));
        const freshStored = await remoteHasIt(path.join(run.remoteDir, 'new'), source, t0, limitS);
        t0 = performance.now();
        const over = seconds(() => execFileSync('cp', [sourceFile, path.join(dir, 'existing')]));
        const overStored = await remoteHasIt(path.join(run.remoteDir, 'existing'), source, t0, limitS);
        return { new: fresh, 'new:s until the remote has it': freshStored, existing: over, 'existing:s until the remote has it': overStored };
      },
      () => {
        rmSync(path.join(run.remoteDir, 'new'), { force: true });
        writeFileSync(path.join(run.remoteDir, 'existing'), old);
      },
    );
    const what = `cp of ${size >> 20} MiB onto SFTP, 1 ms each way`;
    return [
      compareRow(r, 'new', { id: 'M3 new', name: `${what}, a new file`, metric: 'seconds to close', unit: 's', higherIsBetter: false }),
      compareRow(r, 'existing', { id: 'M3 over', name: `${what}, over an existing file`, metric: 'seconds to close', unit: 's', higherIsBetter: false }),
    ];
  });
}
