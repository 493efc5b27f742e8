import { MessageChannel } from 'node:worker_threads';

import { Fid, RefTable } from '../../src/index.js';
import { median, round } from '../measure.js';
import { benchPool, newBarrier } from '../pool.js';
import type { RowFn } from '../row.js';
import type { BenchTask } from '../workers/bench-worker.js';

const HOT_KEYS = 256;

/**
 * B2: find+hold+release from 2 workers on the same hot keys: aggregate against one
 * worker, against the pre-2008 design (count change under the exclusive lock), and
 * against a cache owned by one thread and asked through postMessage.
 */
export const b2: RowFn = async (ctx) => {
  const ops = ctx.quick ? 300_000 : 2_000_000;
  const reps = ctx.quick ? 5 : 9;
  const table = new RefTable({ capacity: 4 * HOT_KEYS });
  const fids = Array.from({ length: HOT_KEYS }, (_, v) => new Fid(1, 536870915, v, 1));
  for (const fid of fids) table.release(table.getHold(fid));
  const pool = benchPool(2);
  try {
    const once = async (threads: number, mode: 'shared' | 'exclusive'): Promise<number> => {
      const task: BenchTask = { kind: 'refTable', table: table.descriptor, fids: fids.map((f) => f.toJSON()), ops, mode, barrier: newBarrier(), parties: threads };
      const results = await Promise.all(Array.from({ length: threads }, () => pool.run(task)));
      return (threads * ops) / (Math.max(...results.map((x) => x.ms)) / 1000);
    };
    // The three measurements alternate, so drift on a noisy machine hits them alike.
    ctx.progress('B2: one worker, two workers, two workers on the exclusive-lock baseline');
    const ones: number[] = [];
    const twos: number[] = [];
    const baselines: number[] = [];
    for (let r = 0; r < reps; r++) {
      ones.push(await once(1, 'shared'));
      twos.push(await once(2, 'shared'));
      baselines.push(await once(2, 'exclusive'));
    }
    const one = median(ones);
    const two = median(twos);
    const baseline = median(baselines);

    ctx.progress('B2: postMessage peer');
    const owner = new Map(fids.map((f) => [f.toString(), 0]));
    const { port1, port2 } = new MessageChannel();
    port1.on('message', (i: number) => {
      const key = fids[i & (HOT_KEYS - 1)]!.toString();
      owner.set(key, owner.get(key)! + 1);
      port1.postMessage(i);
    });
    const peerOps = ctx.quick ? 2_000 : 10_000;
    const peerResult = await pool.run({ kind: 'postMessage', port: port2, ops: peerOps }, { transferList: [port2] });
    port1.close();
    const peer = peerOps / (peerResult.ms / 1000);

    const scaling = two / one;
    return {
      id: 'B2',
      name: 'RefTable find+hold+release, 2 workers on shared hot keys',
      metric: 'aggregate ops/s, 2 workers',
      unit: 'ops/s',
      value: round(two),
      baseline: round(baseline),
      peer: round(peer),
      floor: null,
      ratio: round(scaling),
      goal: '2 workers / 1 worker >= 1.7, >= 1.5x the exclusive-lock baseline, >= 1000x postMessage',
      met: scaling >= 1.7 && two / baseline >= 1.5 && two / peer >= 1000,
      extra: {
        'one worker ops/s': round(one),
        'vs exclusive-lock baseline': round(two / baseline),
        'vs postMessage peer': round(two / peer),
      },
    };
  } finally {
    await pool.destroy();
    table.close();
  }
};
