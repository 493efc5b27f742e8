import { execFileSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import path from 'node:path';

import { median } from '../measure.js';
import { compareRow, withPeers } from '../peers/peer-row.js';
import { commitTree, makeSourceTree } from '../peers/source-tree.js';
import type { Row, RowContext } from '../row.js';

/**
 * M5: `git status` of a repository of ~2,000 files copied onto the SFTP remote (1 ms each
 * way): the first (its index's stat data is the copy's source's, so git reads and hashes
 * every file, and rewrites the index) and then warm (median of three).
 */
export async function m5(ctx: RowContext): Promise<Row[] | undefined> {
  return withPeers(ctx, 'M5', async (run) => {
    const repo = path.join(run.scratch, 'repo');
    const tree = makeSourceTree(repo, ctx.quick ? 500 : 2000);
    commitTree(repo, run.scratch);
    execFileSync('cp', ['-a', repo, path.join(run.remoteDir, 'repo')]);
    const env = { ...process.env, HOME: run.scratch, GIT_CONFIG_NOSYSTEM: '1' };
    const status = (dir: string): number => {
      const t0 = performance.now();
      const out = execFileSync('git', ['-C', path.join(dir, 'repo'), 'status', '--porcelain'], { env, encoding: 'utf8' });
      if (out !== '') throw new Error(`git status of an unchanged repository printed: ${out.slice(0, 200)}`);
      return (performance.now() - t0) / 1000;
    };
    const r = await run.onEachTarget(
      ['--cache-size', '1G'],
      async (dir) => {
        const first = status(dir);
        const warm = median([0, 1, 2].map(() => status(dir)));
        return { first, warm };
      },
      // Each target's first status finds the index as the copy left it.
      () => copyFileSync(path.join(repo, '.git', 'index'), path.join(run.remoteDir, 'repo', '.git', 'index')),
    );
    const what = `git status of a repository of ${tree.files} files over SFTP, 1 ms each way`;
    return [
      compareRow(r, 'first', { id: 'M5 first', name: `first ${what}`, metric: 'seconds', unit: 's', higherIsBetter: false }),
      compareRow(r, 'warm', { id: 'M5 warm', name: `${what}, warm`, metric: 'seconds', unit: 's', higherIsBetter: false }),
    ];
  });
}
