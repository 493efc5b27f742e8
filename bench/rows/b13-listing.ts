import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { fuseUnavailable } from '../../src/mount/fuse.js';
import type { MountStats } from '../../src/mount/cache-mount.js';
import { median, round } from '../measure.js';
import { CLI, mountCli, unmountCli } from '../mount-cli.js';
import type { RowFn } from '../row.js';

/** Seconds one `ls -la` of `dir` takes (its output is read and dropped). */
function lsSeconds(dir: string): number {
  const t0 = performance.now();
  execFileSync('ls', ['-la', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  return (performance.now() - t0) / 1000;
}

function requests(mnt: string): Record<string, number> {
  return (JSON.parse(execFileSync(process.execPath, [CLI, 'stats', mnt], { encoding: 'utf8' })) as MountStats).requests;
}

/**
 * B13: `ls -la` of a directory of 20,000 files through `cmkit mount`, against the same
 * listing on the backing directory (the floor). READDIRPLUS brings every entry's
 * attributes with the listing, so the kernel asks one round per reply buffer, not a
 * LOOKUP and GETATTR per name. Each run waits out the kernel's entry and attribute
 * timeouts (1 s) first, so every run asks the mount again.
 */
export const b13: RowFn = async (ctx) => {
  const why = fuseUnavailable();
  if (why !== undefined) {
    ctx.progress(`B13 skipped: ${why}`);
    return undefined;
  }
  const entries = ctx.quick ? 5_000 : 20_000;
  const base = mkdtempSync(path.join(os.tmpdir(), 'cmkit-b13-'));
  const backing = path.join(base, 'backing');
  const mnt = path.join(base, 'mnt');
  mkdirSync(path.join(backing, 'dir'), { recursive: true });
  mkdirSync(mnt);
  try {
    for (let i = 0; i < entries; i++) writeFileSync(path.join(backing, 'dir', `entry-${i}`), '');
    const floor = median([0, 1, 2].map(() => lsSeconds(path.join(backing, 'dir'))));
    ctx.progress(`B13: ls -la of ${entries} entries through the mount, 3 runs`);
    const cli = await mountCli(backing, mnt, []);
    const times: number[] = [];
    let asked: Record<string, number> = {};
    try {
      for (let rep = 0; rep < 3; rep++) {
        if (rep > 0) await new Promise((r) => setTimeout(r, 1100));
        const before = requests(mnt);
        times.push(lsSeconds(path.join(mnt, 'dir')));
        const after = requests(mnt);
        if (rep === 0) asked = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => (v as number) > 0));
      }
    } finally {
      await unmountCli(cli, mnt);
    }
    const value = median(times);
    const ratio = value / floor;
    return {
      id: 'B13',
      name: `ls -la of ${entries} entries through cmkit mount`,
      metric: 'seconds per listing',
      unit: 's',
      value: round(value),
      baseline: null,
      peer: null,
      floor: round(floor),
      ratio: round(ratio),
      goal: '<= 3x the same listing on the backing directory',
      met: ratio <= 3,
      extra: {
        'kernel requests, first listing': Object.values(asked).reduce((a, b) => a + b, 0),
        'of them readdirplus': asked['readdirplus'] ?? 0,
        'of them getattr': asked['getattr'] ?? 0,
        'of them lookup': asked['lookup'] ?? 0,
      },
    };
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
};
