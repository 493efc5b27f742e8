/**
 * How an M row runs: the SFTP remote with 1 ms added each way, a scratch directory, every
 * target of ./targets.ts mounted fresh in turn for the same workload, and rows that
 * compare cmkit with the better of its two peers and with the floor.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { fuseUnavailable } from '../../src/mount/fuse.js';
import { round } from '../measure.js';
import type { Row, RowContext } from '../row.js';
import { sftpUnavailable, startSftpRemote, type SftpRemote } from './sftp-remote.js';
import { targets, targetUnavailable, type TargetName } from './targets.js';

/** One way; a round trip pays twice this. */
export const DELAY_MS = 1;

/** Each target's measurements of one workload, by measurement name. */
export type Results = Partial<Record<TargetName, Record<string, number>>>;

export interface PeerRun {
  readonly remote: SftpRemote;
  /** The remote's directory (local disk), where the row puts its data first. */
  readonly remoteDir: string;
  /** Scratch space outside the remote. */
  readonly scratch: string;
  /**
   * Runs `workload` on every available target, each freshly mounted, and collects what it
   * returns; `prepare` first puts the remote back as the workload expects it.
   */
  onEachTarget(cmkitArgs: string[], workload: (dir: string, name: TargetName) => Promise<Record<string, number>>, prepare?: () => void): Promise<Results>;
}

/**
 * Runs an M row's body with the remote up, or returns undefined (saying why) where the
 * remote, FUSE or sshfs is missing; rclone alone missing leaves its column empty.
 */
export async function withPeers(ctx: RowContext, id: string, body: (run: PeerRun) => Promise<Row[]>): Promise<Row[] | undefined> {
  const why = fuseUnavailable() ?? sftpUnavailable() ?? targetUnavailable('cmkit');
  if (why !== undefined) {
    ctx.progress(`${id} skipped: ${why}`);
    return undefined;
  }
  const base = mkdtempSync(path.join(os.tmpdir(), `cmkit-${id.toLowerCase()}-`));
  const remoteDir = path.join(base, 'remote');
  const scratch = path.join(base, 'scratch');
  mkdirSync(remoteDir);
  mkdirSync(scratch);
  const remote = await startSftpRemote(DELAY_MS);
  try {
    return await body({
      remote,
      remoteDir,
      scratch,
      onEachTarget: async (cmkitArgs, workload, prepare) => {
        const out: Results = {};
        for (const t of targets(remote, remoteDir, path.join(base, 'mnt'), cmkitArgs)) {
          const missing = targetUnavailable(t.name);
          if (missing !== undefined) {
            ctx.progress(`${id}: ${t.name} skipped: ${missing}`);
            continue;
          }
          ctx.progress(`${id}: ${t.name}`);
          prepare?.();
          const m = await t.mount();
          try {
            out[t.name] = await workload(m.dir, t.name);
          } finally {
            await m.unmount();
          }
        }
        return out;
      },
    });
  } finally {
    await remote.stop();
    rmSync(base, { recursive: true, force: true });
  }
}

/**
 * A row of one measurement: cmkit's value, the better peer's and the floor's; the ratio
 * is how many times better cmkit is than the better peer (>= 1: ahead).
 */
export function compareRow(r: Results, key: string, row: { id: string; name: string; metric: string; unit: string; higherIsBetter: boolean }): Row {
  const get = (t: TargetName): number | undefined => r[t]?.[key];
  const cmkit = get('cmkit')!;
  const peers = (['sshfs', 'rclone'] as const).filter((t) => get(t) !== undefined);
  const better = (a: number, b: number): boolean => (row.higherIsBetter ? a > b : a < b);
  const best = peers.reduce<TargetName | undefined>((b, t) => (b === undefined || better(get(t)!, get(b)!) ? t : b), undefined);
  const peer = best === undefined ? null : get(best)!;
  const ratio = peer === null ? 0 : row.higherIsBetter ? cmkit / peer : peer / cmkit;
  const extra: Record<string, number> = {};
  for (const t of peers) extra[t] = round(get(t)!);
  // A measurement's companions (`new:s until the remote has it`), for every target.
  for (const t of ['floor', 'sshfs', 'rclone', 'cmkit'] as const) {
    for (const [k, v] of Object.entries(r[t] ?? {})) if (k.startsWith(`${key}:`)) extra[`${t} ${k.slice(key.length + 1)}`] = round(v);
  }
  return {
    id: row.id,
    name: `${row.name} (best peer: ${best ?? 'none ran'})`,
    metric: row.metric,
    unit: row.unit,
    value: round(cmkit),
    baseline: null,
    peer: peer === null ? null : round(peer),
    floor: get('floor') === undefined ? null : round(get('floor')!),
    ratio: round(ratio),
    goal: '>= 1: ahead of the better of sshfs and rclone',
    met: ratio >= 1,
    extra,
  };
}
