import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';

import { median } from '../measure.js';
import { compareRow, withPeers } from '../peers/peer-row.js';
import { makeSourceTree } from '../peers/source-tree.js';
import type { Row, RowContext } from '../row.js';

/** Seconds one run of a shell command takes (its output is read and dropped). */
function seconds(command: string): number {
  const t0 = performance.now();
  execFileSync('sh', ['-c', command], { stdio: ['ignore', 'ignore', 'inherit'] });
  return (performance.now() - t0) / 1000;
}

/** Files and bytes under `dir` (the remote's own view, on local disk). */
function count(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else {
        files++;
        bytes += statSync(path.join(d, e.name)).size;
      }
    }
  };
  try {
    walk(dir);
  } catch {
    // a directory the untar has not made yet
  }
  return { files, bytes };
}

/**
 * M4: untar of a source tree of ~2,000 small files onto the SFTP remote (1 ms each way),
 * then, once the remote has every file (when is shown too), on the same mount, `find`,
 * `ls -lR` and `tar c` of it (medians of three).
 */
export async function m4(ctx: RowContext): Promise<Row[] | undefined> {
  return withPeers(ctx, 'M4', async (run) => {
    const tree = makeSourceTree(path.join(run.scratch, 'tree'), ctx.quick ? 500 : 2000);
    const tarball = path.join(run.scratch, 'tree.tar');
    execFileSync('tar', ['cf', tarball, '-C', run.scratch, 'tree']);
    const limitS = ctx.quick ? 60 : 300;
    const r = await run.onEachTarget(
      ['--cache-size', '1G'],
      async (dir) => {
        const t0 = performance.now();
        const untar = seconds(`tar xf '${tarball}' -C '${dir}'`);
        // Before the walks: a peer that uploads behind does so undisturbed, and the walks
        // meet a quiet mount.
        const remoteTree = path.join(run.remoteDir, 'tree');
        for (;;) {
          const c = count(remoteTree);
          if ((c.files === tree.files && c.bytes === tree.bytes) || (performance.now() - t0) / 1000 > limitS) break;
          await new Promise((res) => setTimeout(res, 200));
        }
        const stored = (performance.now() - t0) / 1000;
        const find = median([0, 1, 2].map(() => seconds(`find '${dir}/tree' > /dev/null`)));
        const ls = median([0, 1, 2].map(() => seconds(`ls -lR '${dir}/tree' > /dev/null`)));
        // Through a pipe: GNU tar reads nothing when its archive is /dev/null itself.
        const tarc = median([0, 1, 2].map(() => seconds(`tar --warning=no-file-changed -cf - -C '${dir}' tree | cat > /dev/null`)));
        return { untar, 'untar:s until the remote has every file': stored, find, ls, tarc };
      },
      () => rmSync(path.join(run.remoteDir, 'tree'), { recursive: true, force: true }),
    );
    const what = `${tree.files} files (${(tree.bytes / 2 ** 20).toFixed(1)} MiB) over SFTP, 1 ms each way`;
    return [
      compareRow(r, 'untar', { id: 'M4 untar', name: `untar of ${what}`, metric: 'seconds', unit: 's', higherIsBetter: false }),
      compareRow(r, 'find', { id: 'M4 find', name: `find of ${what}, warm`, metric: 'seconds', unit: 's', higherIsBetter: false }),
      compareRow(r, 'ls', { id: 'M4 ls -lR', name: `ls -lR of ${what}, warm`, metric: 'seconds', unit: 's', higherIsBetter: false }),
      compareRow(r, 'tarc', { id: 'M4 tar c', name: `tar c of ${what}, warm`, metric: 'seconds', unit: 's', higherIsBetter: false }),
    ];
  });
}
